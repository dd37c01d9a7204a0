# syntax=docker/dockerfile:1
RUN echo no stage
