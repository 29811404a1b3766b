// Offline after the first visit: every file of the page's own origin is
// fetched from the network when there is one (so a rebuilt page is never
// stale) and kept, and served from the cache when there is none.
const CACHE = 'qklab-v1';
const SHELL = ['./', 'index.html', 'style.css', 'main.js', 'worker.js', 'pkg/qklab.js', 'pkg/qklab_bg.wasm'];

self.addEventListener('install', (event) => {
  self.skipWaiting();
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)));
});

self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(request);
      if (response.ok) await cache.put(request, response.clone());
      return response;
    } catch (offline) {
      const kept = await cache.match(request, { ignoreSearch: true });
      if (kept) return kept;
      throw offline;
    }
  })());
});
