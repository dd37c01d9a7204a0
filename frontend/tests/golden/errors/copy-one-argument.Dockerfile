	FROM alpine
	COPY only-source
