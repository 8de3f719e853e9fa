"""Local infrastructure without Docker: Apache Kafka (KRaft, single node) and FerretDB (SQLite).

Everything lives under ``.local/`` at the repository root (git-ignored):

    .local/kafka/libs        broker jars copied from Maven Central (first run only)
    .local/kafka/data        KRaft log directory, formatted once
    .local/bin/ferretdb      FerretDB built with Go from the module proxy, with FERRETDB_FIXES (first run only)
    .local/ferretdb/data     one SQLite file per database
    .local/run/*.pid|*.log   process ids and logs

Commands (idempotent): ``provision``, ``up``, ``down``, ``status``, ``topics``.
``up`` starts what is not running, waits until each answers, creates the topic catalogue,
and reports a process that died with the tail of its log.

Only the standard library is used for processes; topic creation uses aiokafka from the
workspace environment, because the catalogue lives in ``guanxi_shared.topics``.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOCAL = Path(os.environ.get("GUANXI_LOCAL_DIR", ROOT / ".local"))
RUN = LOCAL / "run"

KAFKA_HOST = "127.0.0.1"
KAFKA_PORT = int(os.environ.get("GUANXI_KAFKA_PORT", "9092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("GUANXI_KAFKA_CONTROLLER_PORT", str(KAFKA_PORT + 1)))
KAFKA_HEAP = os.environ.get("GUANXI_KAFKA_HEAP", "-Xms256m -Xmx768m")
_TEST_TOPIC = re.compile(r"^t[0-9a-f]{10}\.")
MONGO_PORT = int(os.environ.get("GUANXI_MONGO_PORT", "27017"))


def say(msg: str) -> None:
    print(f"[infra] {msg}", flush=True)


class InfraError(RuntimeError):
    pass


# --------------------------------------------------------------------------- processes


def _pid_file(name: str) -> Path:
    return RUN / f"{name}.pid"


def _log_file(name: str) -> Path:
    return RUN / f"{name}.log"


def _read_pid(name: str) -> int | None:
    try:
        return int(_pid_file(name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _spawn(name: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    log = open(_log_file(name), "ab")
    proc = subprocess.Popen(  # noqa: S603 - fixed argv built here
        argv,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # survives the parent; stopped by `down`
    )
    _pid_file(name).write_text(str(proc.pid))
    return proc.pid


def _wait_until(name: str, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not _alive(_read_pid(name)):
            raise InfraError(f"{name} exited during start-up; last log lines:\n{_tail(_log_file(name))}")
        time.sleep(0.2)
    raise InfraError(f"{name} did not answer within {timeout:.0f}s; last log lines:\n{_tail(_log_file(name))}")


def _stop(name: str, timeout: float = 30) -> None:
    pid = _read_pid(name)
    if not _alive(pid):
        _pid_file(name).unlink(missing_ok=True)
        return
    assert pid is not None
    say(f"stopping {name} (pid {pid})")
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        say(f"{name} ignored SIGTERM for {timeout:.0f}s; killing")
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _pid_file(name).unlink(missing_ok=True)


# --------------------------------------------------------------------------- Kafka


def kafka_dir() -> Path:
    return LOCAL / "kafka"


def provision_kafka() -> None:
    libs = kafka_dir() / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return
    if not shutil.which("mvn") or not shutil.which("java"):
        raise InfraError("Kafka needs Java 17+ and Maven on PATH (mvn, java)")
    say("first run: downloading the Apache Kafka jars from Maven Central (about a minute)…")
    libs.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603
        [
            "mvn", "-q", "-B", "-f", str(HERE / "kafka" / "pom.xml"),
            "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
        ],
        check=True,
    )
    marker.write_text("ok\n")


def _kafka_config() -> Path:
    cfg = kafka_dir() / "server.properties"
    data = kafka_dir() / "data"
    text = (HERE / "kafka" / "server.properties").read_text()
    text = (
        text.replace("@DATA@", str(data))
        .replace("@PORT@", str(KAFKA_PORT))
        .replace("@CONTROLLER_PORT@", str(KAFKA_CONTROLLER_PORT))
    )
    cfg.write_text(text)
    return cfg


def _java_cmd(main: str, *args: str) -> list[str]:
    libs = kafka_dir() / "libs"
    return [
        "java", *KAFKA_HEAP.split(), "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'kafka' / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={RUN}",
        "-cp", f"{libs}/*", main, *args,
    ]


def start_kafka() -> None:
    provision_kafka()
    pid = _read_pid("kafka")
    if _alive(pid):
        if not _port_open(KAFKA_PORT):
            # Still starting (loading its logs can take a while): wait for it, never start a second one.
            say(f"kafka (pid {pid}) is starting; waiting for it")
            _wait_until("kafka", lambda: _port_open(KAFKA_PORT), timeout=600)
        say(f"kafka already running (pid {pid}) on {KAFKA_HOST}:{KAFKA_PORT}")
        return
    if pid is not None and not _alive(pid):
        say(f"kafka (pid {pid}) had died; last log lines:\n{_tail(_log_file('kafka'), 20)}")
    if _port_open(KAFKA_PORT):
        say(f"something already answers on {KAFKA_PORT}; using it as Kafka")
        return
    cfg = _kafka_config()
    data = kafka_dir() / "data"
    if not (data / "meta.properties").exists():
        say("formatting KRaft storage (once)")
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603
            _java_cmd("kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22], "-c", str(cfg)),
            check=True, stdout=subprocess.DEVNULL,
        )
    say(f"starting kafka on {KAFKA_HOST}:{KAFKA_PORT}")
    _spawn("kafka", _java_cmd("kafka.Kafka", str(cfg)), cwd=kafka_dir())
    _wait_until("kafka", lambda: _port_open(KAFKA_PORT), timeout=120)


# --------------------------------------------------------------------------- FerretDB


def ferretdb_bin() -> Path:
    return LOCAL / "bin" / "ferretdb"


# The helper of the field pushdown below (Go, inserted into internal/backends/sqlite/collection.go).
_FIELD_CLAUSE_GO = """\
// fieldClause pushes {field: "s"} or {field: {$in: ["s", ...]}} on one top-level field down to SQLite
// (Guanxi's local build). Rows whose field is an array stay in (an array holding "s" matches too), so the
// rows are a superset of the matches; the handler filters every document in memory as before.
func fieldClause(filter *types.Document) (string, []any) {
	if filter.Len() == 0 {
		return "", nil
	}
	for _, key := range filter.Keys() {
		if key == "_id" || !plainField(key) {
			continue
		}
		var values []string
		switch v := must.NotFail(filter.Get(key)).(type) {
		case string:
			values = []string{v}
		case *types.Document:
			in, _ := v.Get("$in")
			arr, ok := in.(*types.Array)
			if v.Len() != 1 || !ok || arr.Len() == 0 || arr.Len() > 1000 {
				continue
			}
			for i := 0; i < arr.Len(); i++ {
				s, isString := must.NotFail(arr.Get(i)).(string)
				if !isString {
					values = nil
					break
				}
				values = append(values, s)
			}
		}
		if len(values) == 0 {
			continue
		}
		marks := make([]string, len(values))
		args := make([]any, len(values))
		for i, s := range values {
			marks[i] = "?"
			args[i] = string(must.NotFail(sjson.MarshalSingleValue(s)))
		}
		col := metadata.DefaultColumn
		return fmt.Sprintf(` WHERE (%s->'%s' IN (%s) OR json_type(%s, '$.%s') = 'array')`,
			col, key, strings.Join(marks, ", "), col, key), args
	}
	return "", nil
}

// plainField is a top-level field name safe to put in SQL as it is (letters, digits, underscore).
func plainField(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// DeleteAll implements backends.Collection interface.
"""


# The helper of the update batching below (Go, replacing the head of UpdateDocument in internal/handler/common/update.go).
_UPDATE_BATCH_GO = """\
func UpdateDocument(
	ctx context.Context, c backends.Collection, cmd string, iter types.DocumentsIterator, param *Update,
) (*UpdateResult, error) {
	batch := NewUpdateBatch(c)
	res, err := UpdateDocumentInto(ctx, c, cmd, iter, param, batch)

	// What was changed before an error is written too, as before.
	if ferr := batch.Flush(ctx); ferr != nil && err == nil {
		return nil, lazyerrors.Error(ferr)
	}

	return res, err
}

// UpdateBatch holds documents changed by update statements until they are written together, in one
// transaction (Guanxi's local build).
type UpdateBatch struct {
	c    backends.Collection
	docs []*types.Document
	ids  map[string]struct{}
}

// NewUpdateBatch returns an empty batch for collection c.
func NewUpdateBatch(c backends.Collection) *UpdateBatch {
	return &UpdateBatch{c: c, ids: map[string]struct{}{}}
}

// Add keeps a changed document.
func (b *UpdateBatch) Add(doc *types.Document) {
	b.docs = append(b.docs, doc)
	b.ids[fmt.Sprintf("%#v", must.NotFail(doc.Get("_id")))] = struct{}{}
}

// Len is the number of documents waiting.
func (b *UpdateBatch) Len() int {
	return len(b.docs)
}

// Independent reports whether statement u can run before the waiting documents are written: it is no
// upsert and its filter names one _id (a string or ObjectID) that is not waiting, so it reads no document
// of the batch.
func (b *UpdateBatch) Independent(u *Update) bool {
	if len(b.docs) == 0 {
		return true
	}

	if u.Upsert || u.Filter == nil {
		return false
	}

	id, err := u.Filter.Get("_id")
	if err != nil {
		return false
	}

	switch id.(type) {
	case string, types.ObjectID:
	default:
		return false
	}

	_, waiting := b.ids[fmt.Sprintf("%#v", id)]

	return !waiting
}

// Flush writes the waiting documents in one transaction.
func (b *UpdateBatch) Flush(ctx context.Context) error {
	if len(b.docs) == 0 {
		return nil
	}

	docs := b.docs
	b.docs, b.ids = nil, map[string]struct{}{}

	_, err := b.c.UpdateAll(ctx, &backends.UpdateAllParams{Docs: docs})

	return err
}

// UpdateDocumentInto is UpdateDocument that leaves the changed documents in batch for the caller to write.
func UpdateDocumentInto(
	ctx context.Context, c backends.Collection, cmd string, iter types.DocumentsIterator, param *Update,
	batch *UpdateBatch,
) (*UpdateResult, error) {
"""


FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
# Fixes applied to FerretDB's source before it is built: (file in the module, text, replacement, why).
# The build stamp records them, so a binary built without the current set is rebuilt.
FERRETDB_FIXES: tuple[tuple[str, str, str, str], ...] = (
    (
        "internal/backends/sqlite/metadata/metadata.go",
        "IDColumn = DefaultColumn + \"->'$._id'\"",
        "IDColumn = DefaultColumn + \"->'_id'\"",
        # The unique _id index is created on `_ferretdb_sjson->"_id"`, but every query, update and
        # delete by _id compared `_ferretdb_sjson->'$._id'`: the same value, a different expression,
        # so SQLite never used the index and every keyed operation read the whole table (measured:
        # update by _id 1.2 ms at 50 documents, 29 ms at 3,000). `->'_id'` is the expression of the
        # index (a text label after -> means `$.label`), so the planner now searches the index.
        "every lookup by _id read the whole table: the query expression did not match the index's",
    ),
    (
        "internal/backends/sqlite/collection.go",
        "\t\tswitch v.(type) {\n\t\tcase string, types.ObjectID:\n"
        "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n"
        "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n\t\t}\n",
        "\t\tswitch v.(type) {\n\t\tcase string, types.ObjectID:\n"
        "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n"
        "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n"
        "\t\tcase *types.Document:\n\t\t\twhereClause, args = idInClause(v.(*types.Document))\n\t\t}\n",
        # `{_id: {$in: [...]}}` (strings or ObjectIDs) was not pushed down: FerretDB read and decoded every
        # document of the collection to answer it, so a batch's one read of its customers grew with the
        # collection. Now it is `WHERE <_id> IN (...)` on the index. The handlers still filter every
        # returned document in memory, so a clause that returns a superset stays correct.
        "a read of a batch's documents by _id ($in) decoded the whole collection",
    ),
    (
        "internal/backends/sqlite/collection.go",
        "// DeleteAll implements backends.Collection interface.\n",
        "// idInClause pushes {$in: [strings or ObjectIDs]} on _id down to the _id index (Guanxi's local build);\n"
        "// anything else gives no clause, and the handler filters every document in memory as before.\n"
        "func idInClause(cond *types.Document) (string, []any) {\n"
        "\tif cond.Len() != 1 {\n\t\treturn \"\", nil\n\t}\n"
        "\tin, _ := cond.Get(\"$in\")\n"
        "\tarr, ok := in.(*types.Array)\n"
        "\tif !ok || arr.Len() == 0 || arr.Len() > 1000 {\n\t\treturn \"\", nil\n\t}\n"
        "\tmarks := make([]string, arr.Len())\n"
        "\targs := make([]any, arr.Len())\n"
        "\tfor i := 0; i < arr.Len(); i++ {\n"
        "\t\te := must.NotFail(arr.Get(i))\n"
        "\t\tswitch e.(type) {\n\t\tcase string, types.ObjectID:\n\t\tdefault:\n\t\t\treturn \"\", nil\n\t\t}\n"
        "\t\tmarks[i] = \"?\"\n"
        "\t\targs[i] = string(must.NotFail(sjson.MarshalSingleValue(e)))\n"
        "\t}\n"
        "\treturn fmt.Sprintf(` WHERE %s IN (%s)`, metadata.IDColumn, strings.Join(marks, \", \")), args\n"
        "}\n\n"
        "// DeleteAll implements backends.Collection interface.\n",
        "the helper of the $in pushdown above",
    ),
    (
        "internal/backends/sqlite/collection.go",
        "\t\t\tfilterPushdown = true\n"
        "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n"
        "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n\t\t}\n",
        "\t\t\tfilterPushdown = true\n"
        "\t\t\twhereClause = fmt.Sprintf(` WHERE %s = ?`, metadata.IDColumn)\n"
        "\t\t\targs = []any{string(must.NotFail(sjson.MarshalSingleValue(v)))}\n"
        "\t\tcase *types.Document:\n\t\t\twhereClause, args = idInClause(v.(*types.Document))\n"
        "\t\t\tfilterPushdown = whereClause != \"\"\n\t\t}\n",
        "explain reports the $in pushdown as it happens",
    ),
    (
        "internal/backends/sqlite/collection.go",
        "\tif params.Filter.Len() == 1 {\n\t\tv, _ := params.Filter.Get(\"_id\")\n\t\tswitch v.(type) {\n"
        "\t\tcase string, types.ObjectID:\n\t\t\twhereClause",
        "\tif params.Filter.Len() >= 1 {\n\t\tv, _ := params.Filter.Get(\"_id\")\n\t\tswitch v.(type) {\n"
        "\t\tcase string, types.ObjectID:\n\t\t\twhereClause",
        # `{_id: X, purchase_count: 3}` read the whole table: the _id was pushed down only when it was the
        # filter's one key. Every handler filters the returned documents in memory, so answering from the
        # index's rows for _id (a superset of the matches) stays correct; a guarded update by _id now costs
        # what an unguarded one does.
        "a filter on _id plus any other condition read the whole table",
    ),
    (
        "internal/backends/sqlite/collection.go",
        "\tif params.Filter.Len() == 1 {\n\t\tv, _ := params.Filter.Get(\"_id\")\n\t\tswitch v.(type) {\n"
        "\t\tcase string, types.ObjectID:\n\t\t\tfilterPushdown = true",
        "\tif params.Filter.Len() >= 1 {\n\t\tv, _ := params.Filter.Get(\"_id\")\n\t\tswitch v.(type) {\n"
        "\t\tcase string, types.ObjectID:\n\t\t\tfilterPushdown = true",
        "explain reports the _id pushdown beside other conditions as it happens",
    ),
    (
        "internal/backends/sqlite/collection.go",
        "// DeleteAll implements backends.Collection interface.\n",
        _FIELD_CLAUSE_GO,
        # A read by a field other than _id (the surveys of a batch's customers: `customer_id $in`) read and
        # decoded every document in Go, ~0.25 ms each; SQLite now picks the candidate rows from their JSON.
        "a read by {field: string} or {field: {$in: [strings]}} decoded the whole collection",
    ),
    (
        "internal/backends/sqlite/collection.go",
        "\tq += whereClause\n\tq += prepareOrderByClause(params.Sort)\n",
        "\tif whereClause == \"\" {\n\t\twhereClause, args = fieldClause(params.Filter)\n\t}\n\n"
        "\tq += whereClause\n\tq += prepareOrderByClause(params.Sort)\n",
        "queries use the field pushdown when _id gives none",
    ),
    (
        "internal/backends/sqlite/collection.go",
        "\torderByClause := prepareOrderByClause(params.Sort)\n\tsortPushdown",
        "\tif whereClause == \"\" {\n\t\twhereClause, args = fieldClause(params.Filter)\n"
        "\t\tfilterPushdown = whereClause != \"\"\n\t}\n\n"
        "\torderByClause := prepareOrderByClause(params.Sort)\n\tsortPushdown",
        "explain reports the field pushdown as it happens",
    ),
    (
        "internal/handler/common/update.go",
        "func UpdateDocument(ctx context.Context, c backends.Collection, cmd string, iter types.DocumentsIterator, "
        "param *Update) (*UpdateResult, error) { //nolint:lll // for readability\n",
        _UPDATE_BATCH_GO,
        # An update command committed one SQLite transaction (one WAL sync) per changed document: ~1.8 ms
        # each against ~0.2 ms for an insert. The documents of one statement, and of consecutive
        # statements by _id, now go in one transaction; a statement that could read a document still
        # waiting (not by _id, the same _id again, an upsert) writes the waiting ones first.
        "an update command committed one transaction per changed document",
    ),
    (
        "internal/handler/common/update.go",
        "\t\t\t_, err := c.UpdateAll(ctx, &backends.UpdateAllParams{Docs: []*types.Document{doc}})\n"
        "\t\t\tif err != nil {\n\t\t\t\treturn nil, lazyerrors.Error(err)\n\t\t\t}\n",
        "\t\t\tif batch.Add(doc); batch.Len() >= 1000 {\n"
        "\t\t\t\tif err = batch.Flush(ctx); err != nil {\n\t\t\t\t\treturn nil, lazyerrors.Error(err)\n\t\t\t\t}\n"
        "\t\t\t}\n",
        "a changed document joins the batch",
    ),
    (
        "internal/handler/msg_update.go",
        "\tfor _, u := range params.Updates {\n\t\tc, err := db.Collection(params.Collection)\n",
        "\tvar batch *common.UpdateBatch\n\n"
        "\tfor _, u := range params.Updates {\n\t\tc, err := db.Collection(params.Collection)\n",
        "one batch of changed documents per update command",
    ),
    (
        "internal/handler/msg_update.go",
        "\t\tvar qp backends.QueryParams\n",
        "\t\tif batch == nil {\n\t\t\tbatch = common.NewUpdateBatch(c)\n"
        "\t\t} else if !batch.Independent(&u) {\n"
        "\t\t\tif err = batch.Flush(ctx); err != nil {\n\t\t\t\treturn 0, 0, nil, lazyerrors.Error(err)\n\t\t\t}\n"
        "\t\t}\n\n"
        "\t\tvar qp backends.QueryParams\n",
        "a statement that could read a waiting document writes the batch first",
    ),
    (
        "internal/handler/msg_update.go",
        "\t\tcloser := iterator.NewMultiCloser()\n\t\tdefer closer.Close()\n",
        "\t\tcloser := iterator.NewMultiCloser()\n",
        # Every statement's cursor stayed open until the whole command ended (a defer inside the loop),
        # holding one pooled SQLite connection each: a command of ~100 updates waited for a connection
        # forever. Each cursor is now closed when its statement is done.
        "an update command of ~100 statements wedged the server (each statement's cursor held to the end)",
    ),
    (
        "internal/handler/msg_update.go",
        "\t\tresult, err := common.UpdateDocument(ctx, c, \"update\", iter, &u)\n"
        "\t\tif err != nil {\n\t\t\treturn 0, 0, nil, lazyerrors.Error(err)\n\t\t}\n",
        "\t\tresult, err := common.UpdateDocumentInto(ctx, c, \"update\", iter, &u, batch)\n\t\tcloser.Close()\n\n"
        "\t\tif err != nil {\n\t\t\t_ = batch.Flush(ctx) // what earlier statements changed is written, as before\n"
        "\t\t\treturn 0, 0, nil, lazyerrors.Error(err)\n\t\t}\n",
        "statements leave their documents in the command's batch; the cursor is closed when the statement is done",
    ),
    (
        "internal/handler/msg_update.go",
        "\treturn matched, modified, &upserted, nil\n",
        "\tif batch != nil {\n\t\tif err = batch.Flush(ctx); err != nil {\n"
        "\t\t\treturn 0, 0, nil, lazyerrors.Error(err)\n\t\t}\n\t}\n\n"
        "\treturn matched, modified, &upserted, nil\n",
        "the command's batch is written before it answers",
    ),
)


def _ferretdb_stamp() -> str:
    main = hashlib.sha256((HERE / "ferretdb" / "main.go").read_bytes()).hexdigest()
    return "\n".join([f"main.go: {main}", *(f"{f}: {new}" for f, _, new, _ in FERRETDB_FIXES)])


def provision_ferretdb() -> None:
    binary = ferretdb_bin()
    stamp = binary.with_name("ferretdb.fixes")
    if binary.exists() and stamp.exists() and stamp.read_text() == _ferretdb_stamp():
        return
    if not shutil.which("go"):
        raise InfraError("FerretDB is built with Go; put `go` on PATH")
    say("building FerretDB 1.24 with Go from the module proxy, with the fixes in infra.FERRETDB_FIXES "
        "(first run: a few minutes)…")
    binary.parent.mkdir(parents=True, exist_ok=True)
    src = HERE / "ferretdb"
    env = {**os.environ, "CGO_ENABLED": "0"}
    version = re.search(rf"^require {re.escape(FERRETDB_MODULE)} (v\S+)$", (src / "go.mod").read_text(), re.M)
    if version is None:
        raise InfraError(f"deploy/local/ferretdb/go.mod does not require {FERRETDB_MODULE}")
    # The module as the proxy serves it (checked against go.sum), copied and fixed in a build directory.
    info = subprocess.run(  # noqa: S603
        ["go", "mod", "download", "-json", f"{FERRETDB_MODULE}@{version.group(1)}"],
        cwd=src, env=env, check=True, capture_output=True, text=True,
    )
    module_dir = Path(json.loads(info.stdout)["Dir"])
    build = LOCAL / "build" / "ferretdb"
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(module_dir, build / "module")
    for path in (build / "module").rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)  # the module cache is read-only
    for name, text, replacement, why in FERRETDB_FIXES:
        target = build / "module" / name
        content = target.read_text()
        if content.count(text) != 1:
            raise InfraError(f"FerretDB fix no longer applies to {name} ({why}): expected exactly one {text!r}")
        target.write_text(content.replace(text, replacement))
    for name in ("main.go", "go.sum"):
        shutil.copy2(src / name, build / name)
    (build / "go.mod").write_text((src / "go.mod").read_text() + f"\nreplace {FERRETDB_MODULE} => ./module\n")
    subprocess.run(["go", "build", "-trimpath", "-o", str(binary), "."], cwd=build, check=True, env=env)  # noqa: S603
    stamp.write_text(_ferretdb_stamp())
    shutil.rmtree(build, ignore_errors=True)


def start_ferretdb() -> None:
    provision_ferretdb()
    pid = _read_pid("ferretdb")
    if _alive(pid):
        if not _port_open(MONGO_PORT):
            say(f"ferretdb (pid {pid}) is starting; waiting for it")
            _wait_until("ferretdb", lambda: _port_open(MONGO_PORT), timeout=300)
        say(f"ferretdb already running (pid {pid}) on 127.0.0.1:{MONGO_PORT}")
        return
    if pid is not None and not _alive(pid):
        say(f"ferretdb (pid {pid}) had died; last log lines:\n{_tail(_log_file('ferretdb'), 20)}")
    if _port_open(MONGO_PORT):
        say(f"something already answers on {MONGO_PORT}; using it as the store")
        return
    data = LOCAL / "ferretdb" / "data"
    data.mkdir(parents=True, exist_ok=True)
    say(f"starting ferretdb on 127.0.0.1:{MONGO_PORT}")
    _spawn(
        "ferretdb",
        [str(ferretdb_bin()), f"--listen-addr=127.0.0.1:{MONGO_PORT}", f"--sqlite-dir={data}",
         # Go's profiler for the store, when asked for (go tool pprof http://<addr>/debug/pprof/profile).
         *([f"--debug-addr={addr}"] if (addr := os.environ.get("GUANXI_FERRETDB_DEBUG_ADDR")) else [])],
        cwd=LOCAL,
    )
    _wait_until("ferretdb", lambda: _port_open(MONGO_PORT), timeout=60)


# --------------------------------------------------------------------------- topics


async def _ensure_topics(bootstrap: str, prefix: str = "") -> int:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaConnectionError
    from guanxi_shared.topics import CATALOGUE

    deadline = time.monotonic() + 90
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            break
        except KafkaConnectionError:
            await admin.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        wanted = []
        for topic in CATALOGUE:
            for name, parts in ((topic.name, topic.partitions), (topic.dlq, 1)):
                if prefix + name not in existing:
                    wanted.append(NewTopic(prefix + name, num_partitions=parts, replication_factor=1))
        if wanted:
            await admin.create_topics(wanted)
        return len(wanted)
    finally:
        await admin.close()


async def _purge_test_topics(bootstrap: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        leftovers = [t for t in await admin.list_topics() if _TEST_TOPIC.match(t)]
        for start in range(0, len(leftovers), 500):
            await admin.delete_topics(leftovers[start:start + 500])
        return len(leftovers)
    finally:
        await admin.close()


def purge_test_topics() -> None:
    """Delete per-test topics (``t<10 hex>.<name>``) left by interrupted test runs.

    Only `make test` calls this, before the suite: another test run going on at the same time
    against the same broker would lose its topics.
    """
    removed = asyncio.run(_purge_test_topics(f"{KAFKA_HOST}:{KAFKA_PORT}"))
    if removed:
        say(f"removed {removed} topics left over by earlier test runs")


def ensure_topics() -> None:
    created = asyncio.run(_ensure_topics(f"{KAFKA_HOST}:{KAFKA_PORT}"))
    say(f"topic catalogue ready ({created} created)")


# --------------------------------------------------------------------------- commands


def up() -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    with open(RUN / "infra.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        start_ferretdb()
        start_kafka()
        ensure_topics()
    say(f"ready: kafka {KAFKA_HOST}:{KAFKA_PORT}, store mongodb://127.0.0.1:{MONGO_PORT}")


def down() -> None:
    _stop("kafka")
    _stop("ferretdb")


def status() -> int:
    code = 0
    for name, port in (("kafka", KAFKA_PORT), ("ferretdb", MONGO_PORT)):
        pid = _read_pid(name)
        if _alive(pid) and _port_open(port):
            say(f"{name}: running (pid {pid}, port {port})")
        elif pid is not None and not _alive(pid):
            say(f"{name}: CRASHED (pid {pid}); last log lines:\n{_tail(_log_file(name), 20)}")
            code = 1
        else:
            say(f"{name}: stopped")
            code = 1
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["provision", "up", "down", "status", "topics", "purge-test-topics"])
    args = parser.parse_args()
    try:
        if args.command == "provision":
            provision_ferretdb()
            provision_kafka()
        elif args.command == "up":
            up()
        elif args.command == "down":
            down()
        elif args.command == "status":
            return status()
        elif args.command == "topics":
            ensure_topics()
        elif args.command == "purge-test-topics":
            purge_test_topics()
    except (InfraError, subprocess.CalledProcessError) as exc:
        print(f"[infra] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
