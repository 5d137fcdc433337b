"""A tiny h2c (prior knowledge) server for recording captures: gRPC-shaped
answers on /demo.Echo/Say (trailers grpc-status 0) and /demo.Echo/Fail
(trailers-only, grpc-status 14), 503 on anything else. Uses the `h2`
package (python3 -m pip install h2), whose HPACK encoder is independent
of the one podpath decodes with.

usage: h2c_server.py ADDRESS PORT
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events


def serve(conn_sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    conn_sock.sendall(conn.data_to_send())
    paths = {}
    while True:
        data = conn_sock.recv(65535)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                paths[ev.stream_id] = dict(ev.headers).get(b":path", b"")
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                respond(conn, ev.stream_id, paths.pop(ev.stream_id, b""))
            elif isinstance(ev, h2.events.ConnectionTerminated):
                conn_sock.sendall(conn.data_to_send())
                return
        conn_sock.sendall(conn.data_to_send())


def respond(conn, stream, path):
    grpc = [(":status", "200"), ("content-type", "application/grpc")]
    if path == b"/demo.Echo/Say":
        conn.send_headers(stream, grpc)
        conn.send_data(stream, b"\x00\x00\x00\x00\x00")
        conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)
    elif path == b"/demo.Echo/Fail":
        conn.send_headers(stream, grpc + [("grpc-status", "14")], end_stream=True)
    else:
        conn.send_headers(stream, [(":status", "503")], end_stream=True)


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(8)
    while True:
        c, _ = s.accept()
        with c:
            serve(c)


if __name__ == "__main__":
    main()
