# The dicom-file-service image: one image for the API (serve), the migration job (db upgrade)
# and the background renderer (worker). See deploy/docker-compose.yml for the production topology.
#
# Built in two stages: the first has a C compiler for the header scanner (hatch_build.py
# compiles it while the environment is installed); the image itself carries the environment
# and no compiler.
FROM python:3.11-slim AS build

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11

RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv

WORKDIR /app
COPY pyproject.toml uv.lock README.md hatch_build.py ./
COPY src/ ./src/
RUN uv sync --locked --no-dev --no-editable && rm -rf /root/.cache/uv

FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    DICOM_FS_DATA_DIR=/var/lib/dicom-file-service

RUN pip install --no-cache-dir uv \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/dicom-file-service \
    && chown app:app /var/lib/dicom-file-service

WORKDIR /app
# The installed environment (the package in it, not linked to a source tree) and the project
# files `uv run --no-sync` finds it by.
COPY --from=build /app/.venv /app/.venv
COPY pyproject.toml uv.lock README.md ./
USER app

EXPOSE 8000
CMD ["uv", "run", "--no-sync", "dicom-file-service", "serve", "--host", "0.0.0.0", "--port", "8000"]
