# syntax=docker/dockerfile:1
# One image for the API and both executors (`spinbot api`, `spinbot executor control|gpu`).
#
#   docker build -t spinbot .                                   # CPU build of PyTorch (API, control plane)
#   docker build -t spinbot-gpu --build-arg TORCH_INDEX_URL= .  # PyPI's CUDA build (GPU plane; also runs on CPU)
#
# compose.yaml builds both. espeak-ng data comes from the espeakng-loader wheel and ffmpeg from the
# imageio-ffmpeg wheel, so the runtime stage needs no apt packages on top of python:3.11-slim.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Empty TORCH_INDEX_URL means PyPI's default wheel, which on Linux x86_64 is the CUDA build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# A compiler only for dependencies that ship no wheel for this platform; it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv && pip install --upgrade pip setuptools wheel

# torch first and pinned, so the project's looser `torch>=` requirement is already satisfied
# by the wheel chosen here and pip pulls no second build of it.
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION}"

# Dependencies change less often than the code: install them from pyproject.toml alone first,
# so editing a .py file does not re-download the world.
WORKDIR /src
COPY pyproject.toml README.md ./
RUN mkdir -p spinbot executors evaluator planner conversation web shell manifests prompts \
 && touch spinbot/__init__.py executors/__init__.py evaluator/__init__.py planner/__init__.py web/__init__.py \
          conversation/__init__.py shell/__init__.py \
          manifests/__init__.py prompts/__init__.py \
 && pip install . \
 && pip uninstall -y spinbot

# A regular (non-editable) install: manifests/, prompts/, the web assets and the SQL migrations are package
# data inside the wheel, read through importlib.resources, so the runtime stage needs no source tree.
COPY . .
RUN pip install --no-deps . && rm -rf build *.egg-info

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SPINBOT_DATA_DIR=/data \
    SPINBOT_HOST=0.0.0.0 \
    SPINBOT_PORT=8000

RUN groupadd --system --gid 1000 spinbot \
 && useradd --system --uid 1000 --gid spinbot --home-dir /app --shell /usr/sbin/nologin spinbot \
 && mkdir -p /data && chown spinbot:spinbot /data

COPY --from=builder /opt/venv /opt/venv
# No source tree here: the installed package is the application (the checkout's data files ship inside it).
WORKDIR /app

# Fail the build, not the first request, when an asset or the CLI is missing.
RUN python -c "import spinbot; assert (spinbot.MANIFESTS_DIR / 'langgraph.v1.schema.json').is_file()" \
 && python -c "from importlib.resources import files; \
assert (files('web') / 'static' / 'index.html').is_file(); assert (files('prompts') / 'intent.v1.system.j2').is_file()" \
 && spinbot --help >/dev/null \
 && python -c "import imageio_ffmpeg, espeakng_loader; imageio_ffmpeg.get_ffmpeg_exe(); espeakng_loader.get_data_path()"

USER spinbot
VOLUME ["/data"]
EXPOSE 8000 9100

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('SPINBOT_PORT', '8000')}/health\", timeout=4)"

ENTRYPOINT ["spinbot"]
CMD ["api"]
