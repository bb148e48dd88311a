# A stand-in for a 100 Mbit/s link: every client->server byte of every
# connection shares one token bucket (rate bytes/s, 64 KiB burst), and each
# forwarded chunk is delayed by a one-way latency. Usage: linkproxy.py LISTEN TARGET RATE LATENCY_MS
import asyncio, sys, time
listen, target, rate, latency = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]) / 1000
class Bucket:
    def __init__(s): s.tokens, s.t, s.lock = 65536.0, time.monotonic(), asyncio.Lock()
    async def take(s, n):
        async with s.lock:
            now = time.monotonic(); s.tokens = min(65536.0, s.tokens + (now - s.t) * rate); s.t = now
            s.tokens -= n
            if s.tokens < 0: await asyncio.sleep(-s.tokens / rate)
bucket = Bucket()
async def pump(r, w, meter):
    try:
        while True:
            data = await r.read(65536)
            if not data: break
            if meter: await bucket.take(len(data))
            await asyncio.sleep(latency)
            w.write(data); await w.drain()
    except Exception: pass
    finally:
        try: w.close()
        except Exception: pass
async def handle(cr, cw):
    sr, sw = await asyncio.open_connection('127.0.0.1', target)
    await asyncio.gather(pump(cr, sw, True), pump(sr, cw, False))
async def main():
    server = await asyncio.start_server(handle, '127.0.0.1', listen)
    async with server: await server.serve_forever()
asyncio.run(main())
