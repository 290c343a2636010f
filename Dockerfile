# fieldsync app image (used by docker-compose.yml).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY sql ./sql
COPY media ./media
RUN npm run build && npm prune --omit=dev
USER node
EXPOSE 3000
CMD ["node", "dist/main.js"]
