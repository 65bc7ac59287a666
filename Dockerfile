# rbm-dispatch: one image for every process (npm start, the dispatch worker, the emulator).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
ENV HOST=0.0.0.0
EXPOSE 3000
CMD ["npm", "start"]
