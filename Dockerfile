# The grading image: the grader and its Python dependencies on top of BASE_IMAGE.
# Build it with `llmsys image` (see docs/docker.md), which puts the wheels of
# ci/constraints.txt and the grader's sources into the build context: the build
# needs no registry and no package index.
#
# It holds no assignment: hidden tests, the reference and the submission are
# mounted per container, and the hidden ones only into the harness's folder,
# which the student's uid cannot read.
#
# BASE_IMAGE: a CUDA + PyTorch image on GPU servers (its torch is used; nvcc is
# needed by the CUDA assignments, hence a -devel image), any Debian/Ubuntu with
# python3 and python3-venv for CPU grading (`ci/docker.sh` makes one offline).
ARG BASE_IMAGE=pytorch/pytorch:2.9.0-cuda12.8-cudnn9-devel
FROM ${BASE_IMAGE}

ARG PYTHON=python3

# Dependencies first: this layer is rebuilt only when the pinned versions change.
# A virtual environment that also sees the base image's packages (its PyTorch).
COPY wheels /tmp/wheels
COPY requirements.txt constraints.txt /tmp/
RUN ${PYTHON} -m venv --system-site-packages /opt/llmsys \
 && /opt/llmsys/bin/python -m pip install --quiet --no-index --find-links /tmp/wheels \
        --disable-pip-version-check -c /tmp/constraints.txt -r /tmp/requirements.txt \
 && rm -rf /root/.cache

# The grader itself. Student code runs as a uid that owns nothing in the image.
COPY src /opt/llmsys-src
RUN /opt/llmsys/bin/python -m pip install --quiet --no-index --find-links /tmp/wheels \
        --disable-pip-version-check --no-deps /opt/llmsys-src \
 && rm -rf /tmp/wheels /tmp/requirements.txt /tmp/constraints.txt /root/.cache

ENV PATH=/opt/llmsys/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8
WORKDIR /grade
