#!/usr/bin/env node
// The container HEALTHCHECK: GET /livez on this process's health port (SWAPSERVE_HEALTH_PORT for workers and
// schedulers, else the gateway's PORT, else 8080); exit 0 when it answers 200 within 3 s, else 1.
const port = process.env.SWAPSERVE_HEALTH_PORT || process.env.PORT || '8080';
try {
  const r = await fetch(`http://127.0.0.1:${port}/livez`, { signal: AbortSignal.timeout(3000) });
  process.exit(r.status === 200 ? 0 : 1);
} catch {
  process.exit(1);
}
