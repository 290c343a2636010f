# syntax=docker/dockerfile:1
# fieldsync production image (docker build -t fieldsync .; used by docker-compose.yml).
# Two stages: `build` compiles TypeScript with every dependency; `runtime` holds the
# compiled dist/, what the server reads at run time and the production dependencies
# only (no tsx, TypeScript, PGlite, s3rver). It therefore needs DATABASE_URL, JWT_SECRET
# and S3_ENDPOINT (see README "Deploying"). test/integration/image-build.test.ts replays
# these steps without Docker.

FROM node:22-bookworm-slim AS build
WORKDIR /app
# no NODE_ENV=production here: npm ci must install the devDependencies (typescript)
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# the npm cache is a build cache mount: reused by the next build, never in the image
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund
COPY --from=build /app/dist ./dist
# read at run time: SQL files (sql/), the demo's images (media/demo, only when seeding
# the demo), the OpenAPI examples (docs/examples.json); package.json gives "type":
# "module" and the version the OpenAPI document shows
COPY sql ./sql
COPY media ./media
COPY docs/examples.json ./docs/examples.json
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["node", "-e", "fetch('http://127.0.0.1:3000/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1 (no npm, no shell): it receives SIGTERM from docker stop and
# drains in-flight requests before exiting 0
CMD ["node", "dist/main.js"]
