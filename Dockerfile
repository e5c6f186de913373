# syntax=docker/dockerfile:1
#
# inferprobe container image.
#
#   docker build -t inferprobe --build-arg INFERPROBE_GIT_REVISION="$(git rev-parse --short=12 HEAD)" .
#   docker run --rm -p 10048:10048 inferprobe                      # probes the built-in simulator
#   docker run --rm -p 10048:10048 --gpus all \
#     -v "$PWD/config.yml:/etc/inferprobe/config.yml:ro" inferprobe  # your config, with GPUs
#
# The default config (packaging/config.yml) probes the in-process simulator, so the image runs
# without keys or GPUs. Mount your own over /etc/inferprobe/config.yml.

FROM rust:1-bookworm AS builder
# .git is not in the build context: the revision for --version and inferprobe_build_info comes in
# as a build argument.
ARG INFERPROBE_GIT_REVISION=unknown
WORKDIR /src
COPY . .
# The cache mounts keep the registry and build directory between builds; the binary is copied
# out of the cached target directory in the same step, stripped (the release profile keeps line
# tables for backtraces; the image does not need them).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 --strip target/release/inferprobe /out/inferprobe

# bookworm-slim rather than distroless: the health check needs a shell (bash's /dev/tcp), and
# NVML is loaded at run time from the driver's libnvidia-ml.so.1, which the NVIDIA container
# runtime mounts into glibc-based images.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10048 inferprobe \
    && useradd --system --uid 10048 --gid inferprobe --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin inferprobe
COPY --from=builder /out/inferprobe /usr/bin/inferprobe
COPY packaging/config.yml /etc/inferprobe/config.yml
COPY config/example.yml /usr/share/doc/inferprobe/examples/example.yml
COPY dashboards/ /usr/share/inferprobe/dashboards/
COPY alerts/ /usr/share/inferprobe/alerts/

# Under the NVIDIA container runtime (`docker run --gpus all`), these make it mount the driver's
# NVML library and the GPU device nodes; `utility` is the capability NVML needs, nothing more.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility

USER 10048:10048
EXPOSE 10048
# No curl in the image: bash opens the TCP connection itself. Assumes the default
# --web.listen-address (:10048); change both together.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/10048 && printf 'GET /-/healthy HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/inferprobe"]
CMD ["run", "--config.file=/etc/inferprobe/config.yml"]
