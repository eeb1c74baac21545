#!/usr/bin/env python3
"""Azure Blob chores for the tests, signed with the account key (stdlib only):
an independent view of what walship stored, and the setup it needs.

  azure_tool.py ENDPOINT ACCOUNT KEY create-container CONTAINER
      Create Container; an existing one is fine.
  azure_tool.py ENDPOINT ACCOUNT KEY put CONTAINER PREFIX COUNT
      COUNT small blobs PREFIX0000, PREFIX0001, ... (content: their number).
  azure_tool.py ENDPOINT ACCOUNT KEY list CONTAINER PREFIX
      Committed blobs under PREFIX, "name<TAB>size" per line, every page.
  azure_tool.py ENDPOINT ACCOUNT KEY get CONTAINER BLOB
      The blob's bytes on stdout.
  azure_tool.py ENDPOINT ACCOUNT KEY blocks CONTAINER BLOB
      "committed N uncommitted M" (Get Block List), or "missing".
  azure_tool.py ENDPOINT ACCOUNT KEY watch CONTAINER BLOB SIZE SECONDS
      Looks at BLOB (Get Block List, then List Blobs) as fast as it can until
      it is listed with SIZE bytes or SECONDS pass; prints "looks N
      unlisted-with-blocks M complete C" and a line "HALF <size>" for every
      look that listed it with another size.
  azure_tool.py ENDPOINT ACCOUNT KEY account-sas PERMISSIONS
      An account SAS token (blob service; container and object resources),
      valid from an hour ago for a day, with PERMISSIONS such as "rl".

ENDPOINT is the blob service URL, e.g. http://127.0.0.1:10000/devstoreaccount1.
The test crate has no dependencies on purpose, so this is the HMAC it needs.
"""
import base64
import datetime
import hashlib
import hmac
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

VERSION = "2019-12-12"


class Account:
    def __init__(self, endpoint, name, key):
        self.endpoint = endpoint.rstrip("/")
        self.name = name
        self.key = base64.b64decode(key)

    def sign(self, text):
        mac = hmac.new(self.key, text.encode("utf-8"), hashlib.sha256)
        return base64.b64encode(mac.digest()).decode()

    def request(self, method, path, query=(), body=b"", headers=None, ok=(200, 201, 202)):
        """One SharedKey-signed request; returns (status, body)."""
        url = self.endpoint + "/" + urllib.parse.quote(path)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = dict(headers or {})
        headers["x-ms-date"] = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%a, %d %b %Y %H:%M:%S GMT")
        headers["x-ms-version"] = VERSION
        length = str(len(body)) if body else ""
        if body:  # urllib would add a form Content-Type, which must be signed
            headers.setdefault("Content-Type", "application/octet-stream")
        canonical_headers = "".join(
            f"{k}:{v}\n" for k, v in sorted((k.lower(), v) for k, v in headers.items()
                                            if k.lower().startswith("x-ms-")))
        resource = f"/{self.name}{urllib.parse.urlparse(url).path}"
        for name in sorted({k for k, _ in query}):
            values = sorted(v for k, v in query if k == name)
            resource += f"\n{name.lower()}:{','.join(values)}"
        # VERB, Content-Encoding, -Language, -Length, -MD5, -Type, Date,
        # If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range.
        fields = [method, "", "", length, headers.get("Content-MD5", ""),
                  headers.get("Content-Type", "")] + [""] * 6
        headers["Authorization"] = \
            f"SharedKey {self.name}:{self.sign(chr(10).join(fields) + chr(10) + canonical_headers + resource)}"
        headers["Content-Length"] = str(len(body))
        # data=None for no body: urllib would add a Content-Type (signed as empty).
        req = urllib.request.Request(url, method=method, data=body or None, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return e.code, e.read()
            sys.exit(f"{method} {path}: HTTP {e.code} {e.read()[:300]!r}")


def create_container(account, container):
    account.request("PUT", container, [("restype", "container")], ok=(201, 409))


def put(account, container, prefix, count):
    for i in range(int(count)):
        account.request("PUT", f"{container}/{prefix}{i:04d}", body=str(i).encode(),
                        headers={"x-ms-blob-type": "BlockBlob"})


def list_blobs(account, container, prefix):
    marker = ""
    while True:
        query = [("restype", "container"), ("comp", "list"), ("prefix", prefix)]
        if marker:
            query.append(("marker", marker))
        _, body = account.request("GET", container, query)
        text = body.decode("utf-8")
        for blob in re.findall(r"<Blob>(.*?)</Blob>", text, re.S):
            name = re.search(r"<Name>(.*?)</Name>", blob, re.S).group(1)
            size = re.search(r"<Content-Length>(\d+)</Content-Length>", blob).group(1)
            print(f"{unescape(name)}\t{size}")
        found = re.search(r"<NextMarker>(.*?)</NextMarker>", text, re.S)
        marker = found.group(1) if found else ""
        if not marker:
            return


def unescape(text):
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&apos;", "'").replace("&amp;", "&"))


def get(account, container, blob):
    _, body = account.request("GET", f"{container}/{blob}")
    sys.stdout.buffer.write(body)


def blocks(account, container, blob):
    counts = block_counts(account, container, blob)
    print("missing" if counts is None else f"committed {counts[0]} uncommitted {counts[1]}")


def block_counts(account, container, blob):
    status, body = account.request(
        "GET", f"{container}/{blob}", [("comp", "blocklist"), ("blocklisttype", "all")],
        ok=(200, 404))
    if status == 404:
        return None
    text = body.decode("utf-8")

    def count(kind):
        found = re.search(rf"<{kind}>(.*?)</{kind}>", text, re.S)
        return len(re.findall(r"<Block>", found.group(1))) if found else 0
    return count("CommittedBlocks"), count("UncommittedBlocks")


def listed_size(account, container, blob):
    query = [("restype", "container"), ("comp", "list"), ("prefix", blob)]
    _, body = account.request("GET", container, query)
    for found in re.finditer(r"<Blob>(.*?)</Blob>", body.decode("utf-8"), re.S):
        name = unescape(re.search(r"<Name>(.*?)</Name>", found.group(1), re.S).group(1))
        if name == blob:
            return int(re.search(r"<Content-Length>(\d+)</Content-Length>", found.group(1)).group(1))
    return None


def watch(account, container, blob, size, seconds):
    deadline = time.monotonic() + float(seconds)
    looks = unlisted_with_blocks = complete = 0
    while time.monotonic() < deadline:
        counts = block_counts(account, container, blob)
        listed = listed_size(account, container, blob)
        looks += 1
        if listed is None and counts is not None and counts[1] > 0:
            unlisted_with_blocks += 1
        if listed is not None and listed != int(size):
            print(f"HALF {listed}")
        if listed == int(size):
            complete = 1
            break
    print(f"looks {looks} unlisted-with-blocks {unlisted_with_blocks} complete {complete}")


def account_sas(account, permissions):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    start = (now - datetime.timedelta(hours=1)).strftime(fmt)
    expiry = (now + datetime.timedelta(days=1)).strftime(fmt)
    services, resource_types = "b", "co"
    string_to_sign = "\n".join(
        [account.name, permissions, services, resource_types, start, expiry, "", "", VERSION, ""])
    query = {"sv": VERSION, "ss": services, "srt": resource_types, "sp": permissions,
             "st": start, "se": expiry, "sig": account.sign(string_to_sign)}
    print(urllib.parse.urlencode(query))


COMMANDS = {"create-container": create_container, "put": put, "list": list_blobs, "get": get,
            "blocks": blocks, "watch": watch, "account-sas": account_sas}


def main(argv):
    if len(argv) < 5 or argv[4] not in COMMANDS:
        sys.exit(__doc__)
    account = Account(argv[1], argv[2], argv[3])
    try:
        COMMANDS[argv[4]](account, *argv[5:])
    except TypeError:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
