# Labbook web and worker image (CPU torch; for GPU workers build with --build-arg TORCH_INDEX=<CUDA wheel index>).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 LABBOOK_DATA_DIR=/data LABBOOK_ARTIFACT_ROOT=/artifacts
RUN apt-get update && apt-get install -y --no-install-recommends git npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# TORCH_INDEX: an extra pip index holding the torch build you want (CPU or CUDA); empty uses PyPI.
ARG TORCH_INDEX=""
COPY requirements.txt constraints.txt package.json package-lock.json ./
RUN pip install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} -r requirements.txt -c constraints.txt && npm ci --no-audit --no-fund
COPY . .
RUN LABBOOK_ENV=development REDIS_URL=redis://unused:6379/0 python manage.py collectstatic --noinput
RUN useradd --create-home labbook && mkdir -p /data /artifacts && chown labbook /data /artifacts
USER labbook
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "labbook.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
