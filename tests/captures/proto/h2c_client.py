"""An h2c (prior knowledge) client for recording captures: three requests
on one connection, one after another, so later header blocks refer to the
HPACK dynamic table earlier ones filled. Uses the `h2` package.

usage: h2c_client.py HOST PORT
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events

REQUESTS = [
    ("POST", "/demo.Echo/Say", True),
    ("POST", "/demo.Echo/Fail", True),
    ("GET", "/healthz", False),
]


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    sock = socket.create_connection((host, port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    for method, path, grpc in REQUESTS:
        stream = conn.get_next_available_stream_id()
        headers = [
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", f"{host}:{port}"),
            ("user-agent", "pp-h2c-client"),
        ]
        if grpc:
            headers += [("content-type", "application/grpc"), ("te", "trailers")]
            conn.send_headers(stream, headers)
            conn.send_data(stream, b"\x00\x00\x00\x00\x02\x08\x01", end_stream=True)
        else:
            conn.send_headers(stream, headers, end_stream=True)
        sock.sendall(conn.data_to_send())
        done = False
        while not done:
            data = sock.recv(65535)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = done or ev.stream_id == stream
            sock.sendall(conn.data_to_send())
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()


if __name__ == "__main__":
    main()
