FROM alpine
COPY --lnk a /b
