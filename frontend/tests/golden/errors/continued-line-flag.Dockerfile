FROM alpine
RUN --mount=type=cache,target=/x \
    --netwrk=none \
    make
