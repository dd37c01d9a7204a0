# check=skip=all;nonsense=1
FROM alpine
