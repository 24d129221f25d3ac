FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY hub ./hub
COPY consumers ./consumers
COPY projections ./projections
RUN pip install . && useradd --create-home --uid 10001 hub && mkdir /data && chown hub /data

USER hub
WORKDIR /data
ENV HUB_HOME=/data/.agent_hub HUB_API_HOST=0.0.0.0
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=10s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=5)"
ENTRYPOINT ["agent-hub"]
CMD ["up", "--host", "0.0.0.0"]
