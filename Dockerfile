# Both images, for users with a Docker engine:
#   docker build --target wharf-registry -t wharf-registry .
#   docker build --target wharf-operator -t wharf-operator .
# `make images` builds the same images without one (image-builder/), which is
# what CI and the e2e cluster use.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ENV RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu -p wharf-registry -p wharf-operator

FROM gcr.io/distroless/static-debian12:nonroot AS base
ARG VERSION=dev
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/wharf-dev/wharf"
USER 65532:65532

FROM base AS wharf-registry
LABEL org.opencontainers.image.title="wharf-registry" \
      org.opencontainers.image.description="OCI Distribution registry, a drop-in for registry:2"
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/wharf-registry /usr/local/bin/wharf-registry
EXPOSE 5000/tcp 5001/tcp
ENTRYPOINT ["/usr/local/bin/wharf-registry"]
CMD ["serve", "/etc/wharf/config.yml"]

FROM base AS wharf-operator
LABEL org.opencontainers.image.title="wharf-operator" \
      org.opencontainers.image.description="Kubernetes operator for Wharf registries and mirrors"
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/wharf-operator /usr/local/bin/wharf-operator
EXPOSE 8080/tcp
ENTRYPOINT ["/usr/local/bin/wharf-operator"]
CMD ["run"]
