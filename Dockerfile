# The mailbot image: Debian 12 slim, the same install as a bare server (scripts/install-server.sh:
# LibreOffice nogui, the Chinese font, pg_dump, a hash-checked virtualenv in /opt/mailbot), run as
# the unprivileged `mailbot` user. Everything is installed at build time: the container needs no
# network at start (only the mail servers and the database at run time).
#   docker build -t mailbot .         then see docker-compose.yml
FROM debian:bookworm-slim

ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

COPY . /src
# /srv/mailbot/config is where compose mounts the office's config folder (the example until then):
# its paths are read beside mailbot.yaml, and the example's `storage: ../var` is /srv/mailbot/var,
# the storage volume /var/lib/mailbot.
RUN bash /src/scripts/install-server.sh --no-systemd \
    && rm -rf /var/lib/apt/lists/* /root/.cache \
    && install -d -o root -g mailbot -m 0750 /srv/mailbot /srv/mailbot/config \
    && cp -a /etc/mailbot/. /srv/mailbot/config/ \
    && ln -s /var/lib/mailbot /srv/mailbot/var \
    && rm -rf /src

ENV PATH=/opt/mailbot/bin:$PATH \
    MAILBOT_CONFIG=/srv/mailbot/config/mailbot.yaml \
    HOME=/var/lib/mailbot
WORKDIR /srv/mailbot
USER mailbot
VOLUME ["/var/lib/mailbot"]

# One Chinese line per problem in `docker inspect`; exit 1 marks the container unhealthy.
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=3 CMD ["mailbot", "health"]
CMD ["mailbot", "run", "--log-format", "json"]
