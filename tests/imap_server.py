"""A small IMAP4rev1 server for tests: real sockets, TLS, messages in memory, one folder tree.

It speaks the part of IMAP4rev1 (RFC 3501) that imaplib and the bounce mailbox use: CAPABILITY,
NOOP, LOGIN, LOGOUT, SELECT, EXAMINE, LIST, CREATE, SEARCH, FETCH, STORE, COPY, MOVE (RFC 6851),
EXPUNGE, CLOSE, and the UID forms of SEARCH, FETCH, STORE, COPY, MOVE and EXPUNGE (RFC 4315);
search keys ALL, SEEN, UNSEEN, DELETED, UNDELETED; fetch items UID, FLAGS, RFC822.SIZE,
RFC822, BODY[] and BODY.PEEK[] (the whole message; all but PEEK set \\Seen).

`ImapServer(tls_context, user=, password=, capabilities=("MOVE", "UIDPLUS"))` listens on
127.0.0.1 at a free port (`port`), each connection in its own thread, with implicit TLS (IMAPS)
from `tls_context`. Sessions share the folders under one lock, so two clients see each other's
moves. `deliver(data, folder="INBOX")` puts a message in a folder (created if needed) and
returns its UID; `messages(folder)` and `flags(folder)` show what is there; `commands` lists
every command received (tag stripped, LOGIN's password hidden). `refuse_moves = True` makes COPY
and MOVE answer NO, as a server that failed to move would.
"""

from __future__ import annotations

import re
import socketserver
import ssl
import threading
from dataclasses import dataclass, field

CRLF = b"\r\n"
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


@dataclass
class Stored:
    uid: int
    data: bytes
    flags: set[str] = field(default_factory=set)


@dataclass
class Folder:
    uid_validity: int
    next_uid: int = 1
    messages: list[Stored] = field(default_factory=list)

    def add(self, data: bytes, flags=()) -> int:
        uid, self.next_uid = self.next_uid, self.next_uid + 1
        self.messages.append(Stored(uid, data, set(flags)))
        return uid


class ImapServer:
    def __init__(
        self,
        tls_context: ssl.SSLContext,
        *,
        user: str = "bounces@walkagain.example",
        password: str = "imap password with spaces",
        capabilities=("MOVE", "UIDPLUS"),
    ):
        self.tls_context = tls_context
        self.user, self.password = user, password
        self.capabilities = tuple(capabilities)
        self.lock = threading.RLock()
        self.folders: dict[str, Folder] = {}
        self._validity = 1000
        self.folder("INBOX")
        self.commands: list[str] = []
        self.refuse_moves = False
        handler = type("Handler", (_Session,), {"imap": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    # The test's side ------------------------------------------------------------------------
    def __enter__(self) -> ImapServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def folder(self, name: str) -> Folder:
        with self.lock:
            key = _key(name)
            if key not in self.folders:
                self._validity += 1
                self.folders[key] = Folder(self._validity)
            return self.folders[key]

    def deliver(self, data: bytes, folder: str = "INBOX") -> int:
        with self.lock:
            return self.folder(folder).add(data)

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        with self.lock:
            found = self.folders.get(_key(folder))
            return [m.data for m in found.messages] if found else []

    def flags(self, folder: str = "INBOX") -> list[set[str]]:
        with self.lock:
            found = self.folders.get(_key(folder))
            return [set(m.flags) for m in found.messages] if found else []


def _key(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Bad(Exception):
    """A command the server does not understand: BAD."""


class _Session(socketserver.StreamRequestHandler):
    imap: ImapServer
    timeout = 30

    def setup(self):
        self.request = self.imap.tls_context.wrap_socket(self.request, server_side=True)
        super().setup()
        self.user = None
        self.selected: str | None = None
        self.read_only = False

    def handle(self):
        caps = " ".join(("IMAP4rev1", *self.imap.capabilities))
        self.send(f"* OK [CAPABILITY {caps}] test IMAP server ready")
        while True:
            line = self.read_command()
            if line is None:
                return
            tag, _, rest = line.partition(" ")
            name, _, arguments = rest.partition(" ")
            name = name.upper()
            shown = f"LOGIN {arguments.split(' ')[0]} ***" if name == "LOGIN" else rest
            with self.imap.lock:
                self.imap.commands.append(shown)
            try:
                with self.imap.lock:  # one command at a time over the shared folders
                    if name == "UID":
                        sub, _, arguments = arguments.partition(" ")
                        answer = self.command(sub.upper(), _tokens(arguments), uid=True)
                    else:
                        answer = self.command(name, _tokens(arguments), uid=False)
            except Bad as error:
                answer = f"BAD {error}"
            except (ValueError, IndexError, KeyError):
                answer = "BAD malformed command"
            self.send(f"{tag} {answer}")
            if name == "LOGOUT":
                return

    # Reading and writing --------------------------------------------------------------------
    def read_command(self) -> str | None:
        """One command line; a synchronizing literal {n} is read after a continuation and
        given back as a quoted string."""
        parts = []
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return None
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            literal = re.search(r"\{(\d+)\}$", line)
            if not literal:
                parts.append(line)
                return "".join(parts)
            self.send("+ go ahead")
            data = self.rfile.read(int(literal.group(1))).decode("utf-8", "replace")
            parts.append(line[: literal.start()] + _quote(data))

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        self.wfile.write(data + CRLF)
        self.wfile.flush()

    # Commands -------------------------------------------------------------------------------
    def command(self, name: str, args: list[str], *, uid: bool) -> str:
        if uid and name not in ("SEARCH", "FETCH", "STORE", "COPY", "MOVE", "EXPUNGE"):
            raise Bad(f"UID {name} is not a UID command")
        if name == "CAPABILITY":
            self.send("* CAPABILITY " + " ".join(("IMAP4rev1", *self.imap.capabilities)))
            return "OK CAPABILITY completed"
        if name == "NOOP":
            return "OK NOOP completed"
        if name == "LOGOUT":
            self.send("* BYE logging out")
            return "OK LOGOUT completed"
        if name == "LOGIN":
            if (args[0], args[1]) != (self.imap.user, self.imap.password):
                return "NO [AUTHENTICATIONFAILED] invalid credentials"
            self.user = args[0]
            return "OK [CAPABILITY " + " ".join(("IMAP4rev1", *self.imap.capabilities)) + "] in"
        if self.user is None:
            return "NO log in first"
        if name in ("SELECT", "EXAMINE"):
            return self.select(args[0], read_only=name == "EXAMINE")
        if name == "LIST":
            return self.list(args[0], args[1])
        if name == "CREATE":
            if _key(args[0]) in self.imap.folders:
                return "NO [ALREADYEXISTS] that folder exists"
            self.imap.folder(args[0])
            return "OK CREATE completed"
        if self.selected is None:
            return "NO select a folder first"
        folder = self.imap.folders.get(self.selected)
        if folder is None:
            return "NO the selected folder is gone"
        handlers = {
            "SEARCH": self.search,
            "FETCH": self.fetch,
            "STORE": self.store,
            "COPY": self.copy,
            "MOVE": self.move,
            "EXPUNGE": self.expunge,
            "CLOSE": self.close,
        }
        if name not in handlers:
            raise Bad(f"unknown command {name}")
        if name == "MOVE" and "MOVE" not in self.imap.capabilities:
            raise Bad("MOVE is not offered")
        if name == "EXPUNGE" and uid and "UIDPLUS" not in self.imap.capabilities:
            raise Bad("UID EXPUNGE is not offered")
        return handlers[name](folder, args, uid)

    def select(self, name: str, *, read_only: bool) -> str:
        folder = self.imap.folders.get(_key(name))
        if folder is None:
            self.selected = None
            return "NO [NONEXISTENT] no such folder"
        self.selected, self.read_only = _key(name), read_only
        self.send(f"* {len(folder.messages)} EXISTS")
        self.send("* 0 RECENT")
        self.send("* FLAGS (" + " ".join(SYSTEM_FLAGS) + ")")
        self.send(f"* OK [UIDVALIDITY {folder.uid_validity}] UIDs valid")
        self.send(f"* OK [UIDNEXT {folder.next_uid}] predicted next UID")
        mode = "READ-ONLY" if read_only else "READ-WRITE"
        return f"OK [{mode}] {'EXAMINE' if read_only else 'SELECT'} completed"

    def list(self, reference: str, pattern: str) -> str:
        if pattern == "":
            self.send('* LIST (\\Noselect) "/" ""')
            return "OK LIST completed"
        wanted = re.compile(
            "".join(
                ".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c)
                for c in reference + pattern
            )
            + "$"  # fmt: skip
        )
        for name in sorted(self.imap.folders):
            if wanted.match(name):
                self.send(f'* LIST (\\HasNoChildren) "/" {_quote(name)}')
        return "OK LIST completed"

    def chosen(self, folder: Folder, spec: str, uid: bool) -> list[tuple[int, Stored]]:
        """(sequence number, message) for a sequence set or a UID set."""
        numbered = list(enumerate(folder.messages, start=1))
        if not numbered:
            return []
        top = numbered[-1][1].uid if uid else len(numbered)
        ranges = []
        for piece in spec.split(","):
            low, _, high = piece.partition(":")
            a = top if low == "*" else int(low)
            b = a if not high else top if high == "*" else int(high)
            ranges.append((min(a, b), max(a, b)))
        return [(seq, m) for seq, m in numbered
                if any(lo <= (m.uid if uid else seq) <= hi for lo, hi in ranges)]  # fmt: skip

    def search(self, folder: Folder, args: list[str], uid: bool) -> str:
        tests = {
            "ALL": lambda m: True,
            "SEEN": lambda m: "\\Seen" in m.flags,
            "UNSEEN": lambda m: "\\Seen" not in m.flags,
            "DELETED": lambda m: "\\Deleted" in m.flags,
            "UNDELETED": lambda m: "\\Deleted" not in m.flags,
        }
        keys = [key.upper() for key in args if key.upper() != "CHARSET"] or ["ALL"]
        if any(key not in tests for key in keys):
            raise Bad(f"search keys supported: {', '.join(tests)}")
        found = [str(m.uid if uid else seq) for seq, m in enumerate(folder.messages, start=1)
                 if all(tests[key](m) for key in keys)]  # fmt: skip
        self.send(("* SEARCH " + " ".join(found)).rstrip())
        return "OK SEARCH completed"

    def fetch(self, folder: Folder, args: list[str], uid: bool) -> str:
        items = args[1].strip("()").upper().split()
        for seq, message in self.chosen(folder, args[0], uid):
            parts, literal = [], None
            if uid or "UID" in items:
                parts.append(f"UID {message.uid}")
            for item in items:
                if item in ("RFC822", "BODY[]", "BODY.PEEK[]"):
                    if item != "BODY.PEEK[]" and not self.read_only:
                        message.flags.add("\\Seen")
                    literal = ("RFC822" if item == "RFC822" else "BODY[]", message.data)
                elif item == "RFC822.SIZE":
                    parts.append(f"RFC822.SIZE {len(message.data)}")
                elif item not in ("UID", "FLAGS"):
                    raise Bad(f"fetch item {item} is not supported")
            if "FLAGS" in items:
                parts.append("FLAGS (" + " ".join(sorted(message.flags)) + ")")
            head = f"* {seq} FETCH (" + " ".join(parts)
            if literal is None:
                self.send(head + ")")
            else:
                name, data = literal
                space = " " if parts else ""
                self.wfile.write(f"{head}{space}{name} {{{len(data)}}}".encode() + CRLF + data)
                self.send(")")
        return "OK FETCH completed"

    def store(self, folder: Folder, args: list[str], uid: bool) -> str:
        if self.read_only:
            return "NO read-only folder"
        action, flags = args[1].upper(), set(args[2].strip("()").split())
        for seq, message in self.chosen(folder, args[0], uid):
            if action.startswith("+FLAGS"):
                message.flags |= flags
            elif action.startswith("-FLAGS"):
                message.flags -= flags
            elif action.startswith("FLAGS"):
                message.flags = set(flags)
            else:
                raise Bad(f"store {action}?")
            if not action.endswith(".SILENT"):
                shown = " ".join(sorted(message.flags))
                self.send(f"* {seq} FETCH (UID {message.uid} FLAGS ({shown}))")
        return "OK STORE completed"

    def copy(self, folder: Folder, args: list[str], uid: bool, *, moving: bool = False) -> str:
        if self.imap.refuse_moves:
            return "NO [SERVERBUG] the test refuses to copy or move"
        target = self.imap.folders.get(_key(args[1]))
        if target is None:
            return "NO [TRYCREATE] no such folder"
        chosen = self.chosen(folder, args[0], uid)
        pairs = [(m.uid, target.add(m.data, m.flags - {"\\Recent"})) for _, m in chosen]
        code = ""
        if pairs and "UIDPLUS" in self.imap.capabilities:
            sources = ",".join(str(a) for a, _ in pairs)
            copies = ",".join(str(b) for _, b in pairs)
            code = f"[COPYUID {target.uid_validity} {sources} {copies}] "
        if not moving:
            return f"OK {code}COPY completed"
        if code:
            self.send(f"* OK {code}moved")
        for seq, _message in sorted(chosen, key=lambda pair: -pair[0]):
            del folder.messages[seq - 1]
            self.send(f"* {seq} EXPUNGE")
        return "OK MOVE completed"

    def move(self, folder: Folder, args: list[str], uid: bool) -> str:
        return self.copy(folder, args, uid, moving=True)

    def expunge(self, folder: Folder, args: list[str], uid: bool, *, quiet=False) -> str:
        if self.read_only:
            return "NO read-only folder"
        within = {m.uid for _, m in self.chosen(folder, args[0], True)} if uid else None
        for seq in range(len(folder.messages), 0, -1):
            message = folder.messages[seq - 1]
            if "\\Deleted" in message.flags and (within is None or message.uid in within):
                del folder.messages[seq - 1]
                if not quiet:
                    self.send(f"* {seq} EXPUNGE")
        return "OK EXPUNGE completed"

    def close(self, folder: Folder, args: list[str], uid: bool) -> str:
        if not self.read_only:
            self.expunge(folder, [], False, quiet=True)
        self.selected = None
        return "OK CLOSE completed"


def _tokens(text: str) -> list[str]:
    """Arguments: atoms (a [section] may hold spaces), "quoted strings" (unquoted here) and
    (parenthesised lists) (kept whole, with their parentheses)."""
    tokens, i = [], 0
    while i < len(text):
        c = text[i]
        if c == " ":
            i += 1
        elif c == '"':
            j, value = i + 1, []
            while text[j] != '"':
                if text[j] == "\\":
                    j += 1
                value.append(text[j])
                j += 1
            tokens.append("".join(value))
            i = j + 1
        elif c == "(":
            depth, j = 0, i
            while True:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
                if depth == 0:
                    break
            tokens.append(text[i:j])
            i = j
        else:
            j, depth = i, 0
            while j < len(text) and (text[j] != " " or depth):
                depth += {"[": 1, "]": -1}.get(text[j], 0)
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
