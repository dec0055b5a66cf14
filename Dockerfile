# Production image: one image, several roles (web, worker, beat, DICOM receiver) chosen by command.

# The front-end builds (nhsuk-frontend, pinned in package-lock.json) come from the npm registry through
# Debian's own Node.js and npm, at build time only: the running image has no Node.js and fetches nothing.
FROM python:3.11-slim-bookworm AS frontend
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY package.json package-lock.json ./
COPY frontend/vendor.py frontend/vendor.py
RUN npm ci --ignore-scripts --no-audit --no-fund && python frontend/vendor.py
# OHIF's published build (package.json "prebuilt", integrity pinned) through Debian's npm, at build time
# only: the running image has no Node.js and fetches nothing.
FROM python:3.11-slim-bookworm AS ohif
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY package.json ./
COPY frontend/ohif.py frontend/ohif.py
RUN python frontend/ohif.py

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=portal.settings TCP_NODELAY=1

RUN useradd --create-home --uid 10001 portal
# dcmtk's dcmsend: the optional C-STORE sender (DICOM_STORE_SENDER=dcmsend); Debian's package, as tested.
RUN apt-get update && apt-get install -y --no-install-recommends dcmtk && rm -rf /var/lib/apt/lists/*
WORKDIR /app

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=portal:portal . .
COPY --from=frontend --chown=portal:portal /build/frontend/build /app/frontend/build
COPY --from=ohif --chown=portal:portal /build/frontend/ohif /app/frontend/ohif
# collectstatic needs settings to load; the key is a build-time throwaway, never used at run time.
RUN SECRET_KEY=build-only-not-secret DEBUG=0 ALLOWED_HOSTS=build python manage.py collectstatic --noinput \
    && mkdir -p /app/var /spool /audit-digests && chown -R portal:portal /app/var /spool /audit-digests

USER portal
EXPOSE 8000 11112
CMD ["gunicorn", "portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-", "--logger-class", "portal.gunicorn.RedactingLogger"]
