# The dicom-file-service image: one image for the API (serve), the migration job (db upgrade)
# and the background renderer (worker). See deploy/docker-compose.yml for the production topology.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11

RUN pip install --no-cache-dir uv \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /app /var/lib/dicom-file-service \
    && chown app:app /app /var/lib/dicom-file-service

WORKDIR /app
USER app

COPY --chown=app:app pyproject.toml uv.lock README.md ./
COPY --chown=app:app src/ ./src/
RUN uv sync --locked --no-dev && rm -rf /home/app/.cache/uv

ENV DICOM_FS_DATA_DIR=/var/lib/dicom-file-service

EXPOSE 8000
CMD ["uv", "run", "--no-sync", "dicom-file-service", "serve", "--host", "0.0.0.0", "--port", "8000"]
