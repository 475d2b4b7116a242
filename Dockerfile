# roamlb in a privileged container. The same Debian 12 packages as
# scripts/setup.sh (which the build stage runs); hugepages and NIC binding are
# the host's business:
#
#   docker build -t roamlb .
#   docker run --rm -it --privileged --network host \
#     -v /dev/hugepages:/dev/hugepages -v /sys/bus/pci:/sys/bus/pci -v /dev/vfio:/dev/vfio \
#     -v /etc/roamlb:/etc/roamlb:ro roamlb run --config /etc/roamlb/roamlb.toml
#
# Without --config the container runs the embedded demo on virtual devices
# (it needs a writable demo-out/ with the capture: see scripts/demo.sh).

FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/setup.sh /src/scripts/setup.sh
RUN /src/scripts/setup.sh --packages-only \
 && apt-get install -y -qq --no-install-recommends curl \
 && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . /src
RUN cargo build --release --locked --bin roamlb

FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/setup.sh /usr/local/share/roamlb/setup.sh
RUN /usr/local/share/roamlb/setup.sh --runtime-only && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/roamlb /usr/local/bin/roamlb
COPY conf/ /etc/roamlb/
WORKDIR /var/lib/roamlb
ENTRYPOINT ["/usr/local/bin/roamlb"]
CMD ["run", "--config", "/etc/roamlb/roamlb.toml"]
