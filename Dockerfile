# One image for the four services; the command picks the service (python -m services.<name>).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY schemas ./schemas
COPY servicekit ./servicekit
COPY services ./services
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 lessons
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    INGEST_HTTP_HOST=0.0.0.0 REVIEW_HTTP_HOST=0.0.0.0 FOLLOWUP_HTTP_HOST=0.0.0.0 NOTIFY_HTTP_HOST=0.0.0.0
USER lessons
EXPOSE 8081 8082 8083 8084
ENTRYPOINT ["python", "-m"]
CMD ["services.review"]
