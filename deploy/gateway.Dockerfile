# syntax=docker/dockerfile:1
# The gateway image. Build context: the repository root (docker-compose.yml sets it), e.g.
#   docker build -f deploy/gateway.Dockerfile -t smart-passage/gateway .
# What the context leaves out: deploy/gateway.Dockerfile.dockerignore.

FROM node:20-slim AS build
WORKDIR /app
# Whole workspaces (manifests, tsconfigs, sources): `npm ci` runs the root `prepare` script,
# which is `tsc -b`, so the sources must be here first; the dispatch UI is built with Vite
# (the gateway serves dispatch-ui/dist). The npm cache mount keeps rebuilds quick.
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY protocol/ protocol/
COPY gateway/ gateway/
COPY dispatch-ui/ dispatch-ui/
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund \
 && npm run build -w dispatch-ui \
 && test -f gateway/dist/main.js && test -f dispatch-ui/dist/index.html \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-slim
ENV NODE_ENV=production \
    SP_DATA_DIR=/data
WORKDIR /app
# The pruned tree as built: node_modules/@smart-passage/* are workspace links into /app.
COPY --from=build /app /app
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# V8's heap limits (issue 7, bench/README.md "Memory"): without them V8 lets the heap grow to
# several times what is live before collecting, and 10,000 controllers took 361–694 MB of RSS.
CMD ["node", "--max-old-space-size=512", "--max-semi-space-size=8", "gateway/dist/main.js"]
