"""A slow DNS server for tests/captures/dnsretx/record.sh: answers every
datagram on ADDR:53 with the upstream's answer (dnsmasq on 127.0.0.1:PORT),
DELAY seconds after the datagram arrived. Each copy of a query gets its own
answer, as from a server that is slow rather than lossy. Queries for a name
whose first label is `broken` are answered SERVFAIL, as a forwarder that gave
up on its upstream does.

Usage: python3 slow_dns.py ADDR PORT DELAY
"""
import asyncio
import sys


class Upstream(asyncio.DatagramProtocol):
    def __init__(self, answer):
        self.answer = answer

    def datagram_received(self, data, addr):
        if not self.answer.done():
            self.answer.set_result(data)


class Slow(asyncio.DatagramProtocol):
    def __init__(self, upstream_port, delay):
        self.upstream_port = upstream_port
        self.delay = delay

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, client):
        asyncio.get_running_loop().create_task(self.forward(data, client))

    async def forward(self, data, client):
        loop = asyncio.get_running_loop()
        due = loop.time() + self.delay
        # Header (12 bytes), then the first label: length byte and text.
        if len(data) > 19 and data[12:19] == b"\x06broken":
            # The query turned into its answer: QR and RA set, rcode 2.
            reply = data[:2] + bytes([data[2] | 0x80, (data[3] & 0x70) | 0x80 | 2]) + data[4:]
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.transport.sendto(reply, client)
            return
        answer = loop.create_future()
        up, _ = await loop.create_datagram_endpoint(
            lambda: Upstream(answer), remote_addr=("127.0.0.1", self.upstream_port)
        )
        try:
            up.sendto(data)
            reply = await asyncio.wait_for(answer, 5)
        except asyncio.TimeoutError:
            return
        finally:
            up.close()
        await asyncio.sleep(max(0.0, due - loop.time()))
        self.transport.sendto(reply, client)


async def main():
    addr, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Slow(port, delay), local_addr=(addr, 53))
    await asyncio.Event().wait()


asyncio.run(main())
