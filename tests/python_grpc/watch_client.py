"""A gRPC client the crate did not write, for tests/python_grpc.rs: Python's grpcio alone.

Usage: watch_client.py ADDR USERNAME

Logs in to the tonic_grpc example at ADDR (host:port) and prints `token <access_token>`,
then opens `auth.v1.Session/Watch` with that token and prints `event <n>` per event. When
the stream ends it prints `status <CODE> <details>` (e.g. `status UNAUTHENTICATED token
revoked`) and exits 0.

No generated code and no protobuf package: the messages are tiny, so they are encoded and
decoded by hand (proto3 wire format: a string is its tag then a length-prefixed value, a
uint64 its tag then a varint, and a field holding its default value is not sent at all).
"""

import sys

import grpc


def varint(value):
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def string_field(number, text):
    raw = text.encode()
    return varint(number << 3 | 2) + varint(len(raw)) + raw


def fields(data):
    """A message's fields by number; only varints and length-delimited fields occur here."""
    out, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            out[number], i = read_varint(data, i)
        elif wire_type == 2:
            length, i = read_varint(data, i)
            out[number], i = data[i : i + length], i + length
        else:
            raise ValueError(f"unexpected wire type {wire_type}")
    return out


def login_request(username):
    return string_field(1, username) + string_field(2, "password")


def main():
    addr, username = sys.argv[1], sys.argv[2]
    # A proxy from the environment must not stand between the test and its loopback server.
    channel = grpc.insecure_channel(addr, options=[("grpc.enable_http_proxy", 0)])
    login = channel.unary_unary(
        "/auth.v1.Login/Login",
        request_serializer=login_request,
        response_deserializer=lambda data: fields(data)[1].decode(),  # access_token
    )
    watch = channel.unary_stream(
        "/auth.v1.Session/Watch",
        request_serializer=lambda _: b"",  # WatchRequest {}
        response_deserializer=lambda data: fields(data).get(1, 0),  # WatchEvent.n
    )
    token = login(username, timeout=30)
    print(f"token {token}", flush=True)
    # The deadline only keeps a stuck test from hanging: the stream must end long before.
    call = watch(None, metadata=[("authorization", f"Bearer {token}")], timeout=60)
    try:
        for n in call:
            print(f"event {n}", flush=True)
    except grpc.RpcError:
        pass  # the status is read below, whatever it is
    print(f"status {call.code().name} {call.details()}", flush=True)
    channel.close()


if __name__ == "__main__":
    main()
