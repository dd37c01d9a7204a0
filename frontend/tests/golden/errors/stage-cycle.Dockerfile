FROM a AS x
COPY --from=y f /
FROM b AS y
COPY --from=x f /
