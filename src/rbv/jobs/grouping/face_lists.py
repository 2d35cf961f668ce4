"""The face lists: a large pack's faces in files beside the database, in inverted lists,
which an incremental ``rbv cluster`` searches for the known faces nearest its new faces
instead of the pack's HNSW index.

At 1M faces × 512-d the HNSW index's 1,000 searches of a nightly run took 0.85-0.90 s
of its 1.3-1.5 s (1.7 ms of a core each, mostly waiting on memory) and found 72 % of
each new face's exact 30 nearest faces. The lists are read list by list, each once for
all the new faces that probe it: 0.25 s, and 96 % found (scripts/README).

The files hold nothing the database does not: face ids and their embeddings. Whose
face each one found is read from the database, so a face given another person, or none,
or deleted since is never out of date here; a face embedded again by an edit (a box
moved by hand, or its undo: the edit log says which) is added again at its new
embedding, and a part's row of a face a later part holds again is never found. In the
data folder, ``face-lists/<database>-pack<id>/``:

- ``lists.json``: which files make the lists now (replaced whole);
- ``base-<tag>/``: ``centroids.npy``, and each list's faces together in ``ids.npy`` and
  ``rows.npy`` (``offsets.npy``: where each list starts);
- ``added-<tag>/``: the faces added since, the same way (without centroids);
- ``lock``: held while the files change (shared while they are opened).

Rules:

- the first incremental run that finds the pack at :data:`LISTS_MIN_FACES` faces or more
  makes them from the faces that have a person (reading every face: 37-42 s at 1M);
- before it searches, a run adds the faces with a person above the highest id in the
  lists (given one by a full run or by hand); while it clusters, its new faces (not a
  dry run's);
- the added faces are written again with each run's; once they reach
  :data:`ADDED_SHARE` of the base, both make a new base (streamed from both: 1M faces
  in ~5 s, most of it the disk), and once the faces have doubled since the lists were
  made they are made again (new centroids);
- at every opening a sample of the base's faces is compared with the database's
  (another database, a pack made again: made again), and lists that cannot be read
  (damaged, of an older rbv) are made again;
- files that cannot be written or opened (a full disk, a folder of another user) are
  said in the run's report, and the run searches the HNSW index instead: nothing
  depends on the lists.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.cluster.knn import NPROBE, nearest_lists, train_lists, unit_rows
from rbv.cluster.knn_search import search_stored
from rbv.face_rows import PackFaces
from rbv.private_files import private_file, private_folder
from rbv.store.queries.edits import embeddings_changed
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.neighbors import NO_NEIGHBORS, Neighbors, has_persons, with_persons
from rbv.store.queries.packs import PackRow, database_key
from rbv.store.server.connection import Database

LISTS_MIN_FACES = 100_000
"""Faces of a pack from which incremental runs search the face lists."""
ADDED_SHARE = 0.02
"""Faces added since the base, as a share of it, at which they are merged into it."""
SEARCH_MARGIN = 8
"""Faces found beyond the ``k`` asked for, for those that turn out to have no person."""
PROBES = NPROBE
"""Lists each new face is looked for in (of 4·sqrt(n): at 1M, 10 of 4,000)."""
_VERSION = 3
_SAMPLE = 16
SEARCH_BLOCK = 8_192
"""New faces searched at once (their scores take ~12 kB a face meanwhile)."""
_WRITE_ROWS = 65_536
_NAME = "face-lists"


@dataclass(frozen=True)
class FaceLists:
    folder: Path
    state: dict[str, Any]
    centroids: NDArray[np.float32]
    parts: list[tuple[NDArray[np.float32], NDArray[np.int64]]]  # (rows, list offsets)
    part_ids: list[NDArray[np.int64]]  # each part's faces (the base's mapped, not read)

    @property
    def top(self) -> int:
        """The highest face id in the lists."""
        return int(self.state["top"])

    @property
    def ids(self) -> NDArray[np.int64]:
        """Every part's faces end to end (read whole)."""
        return np.concatenate(self.part_ids)

    def faces_at(self, found: NDArray[np.int64]) -> NDArray[np.int64]:
        """The faces of stored rows (numbered as :func:`search_stored` numbers them;
        ``-1`` stays ``-1``, and so does a row of a face a later part holds again: it
        was embedded again since, a box moved by hand)."""
        ends = np.cumsum([len(i) for i in self.part_ids])
        part = np.searchsorted(ends, found, side="right")
        out = np.full(found.shape, -1, np.int64)
        for p, ids in enumerate(self.part_ids):
            here = (part == p) & (found >= 0)
            out[here] = ids[found[here] - (ends[p] - len(ids))]
            if p + 1 < len(self.part_ids):
                later = np.concatenate([np.asarray(i) for i in self.part_ids[p + 1:]])
                out[here] = np.where(np.isin(out[here], later), -1, out[here])
        return out


def lists_folder(db: Database, conn: psycopg.Connection, pack: PackRow) -> Path | None:
    """Where the pack's face lists are kept (None: the database has no data folder)."""
    if db.data_dir is None:
        return None
    host, oid = database_key(conn)
    where = hashlib.sha256(f"{host}\0{oid}".encode()).hexdigest()[:16]
    return db.data_dir / _NAME / f"{where}-pack{pack.id}"


def known_near(db: Database, conn: psycopg.Connection, pack: PackRow, new: PackFaces,
               k: int, progress: Callable[[str], None], notes: list[str], *,
               keep: bool = True) -> tuple[Neighbors | None, Callable[[], None]]:
    """Each new face's ``k`` nearest faces that have a person, found in the face lists
    (built first when missing); None when they cannot be used (said in ``notes``).
    ``keep``: the new faces are then added to the lists (not by a dry run: its faces stay
    new), whatever the run does with them (the lists hold no persons), while the run
    goes on; the function returned waits for that."""
    folder = lists_folder(db, conn, pack)
    if folder is None:
        return None, no_wait
    if not has_persons(conn, pack):  # every face new (a reset): nothing to find
        return NO_NEIGHBORS, no_wait
    try:
        lists = _opened(conn, pack, folder) or _built(conn, pack, folder, progress)
        tail = load_faces(conn, pack, after=lists.top)  # not the new faces: none has a person
        if len(tail):
            lists = _added(folder, tail)
        changed, seq = embeddings_changed(conn, int(lists.state.get("seq", 0)))
        if changed:  # boxes moved by hand since: those faces at their new embeddings
            lists = _added(folder, load_faces(conn, pack, ids=changed), again_ok=True,
                           seq=seq)
        q = unit_rows(new.embeddings)
        probes = nearest_lists(q, lists.centroids, PROBES)
        blocks = [_search(conn, lists, new.ids[cut], q[cut], probes[cut], k)
                  for cut in (slice(at, at + SEARCH_BLOCK)
                              for at in range(0, len(new), SEARCH_BLOCK))]
        found = blocks[0] if len(blocks) == 1 else Neighbors.joined(blocks, new.ids.tolist())
    except (OSError, ValueError, KeyError) as exc:
        notes.append(f"The face lists in {folder} could not be used ({exc}); the new faces "
                     "were searched in the database's index instead.")
        return None, no_wait
    if not keep:
        return found, no_wait
    pool = ThreadPoolExecutor(1, thread_name_prefix="rbv-lists")  # not waited for here
    adding = pool.submit(_added, folder, new, probes[:, 0], again=False)
    pool.shutdown(wait=False)

    def added() -> None:
        try:
            adding.result()
        except (OSError, ValueError, KeyError) as exc:
            notes.append(f"The face lists in {folder} could not take the new faces ({exc}); "
                         "the next run adds them.")
    return found, added


def no_wait() -> None:
    """Nothing to wait for (what :func:`known_near` returns when it adds nothing)."""


@contextmanager
def _locked(folder: Path, how: int) -> Iterator[None]:
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)  # releases the lock


def _mine(folder: Path) -> Path:
    """``folder`` and the one above it, checked to be folders of this user (not links)
    that no one else may enter (made so where missing, closed where open): whoever could
    write there could make runs join faces to persons on vectors of their own."""
    levels = (folder.parent, folder)
    for level in levels:  # before anything is made or changed there
        if os.path.lexists(level):
            _own(level)
    private_folder(folder)
    for level in levels:
        _own(level, closed=True)
    return folder


def _own(level: Path, *, closed: bool = False) -> None:
    st = os.lstat(level)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() \
            or (closed and st.st_mode & 0o077):
        raise ValueError(f"{level} is not a private folder of this user")


def _opened(conn: psycopg.Connection, pack: PackRow, folder: Path) -> FaceLists | None:
    """The pack's face lists as the files hold them, if they are its (checked against
    the database); None when there are none to use."""
    if not (_mine(folder) / "lists.json").exists():
        return None
    try:
        with _locked(folder, fcntl.LOCK_SH):
            lists = _read(folder)
    except (ValueError, KeyError, TypeError, FileNotFoundError):
        return None  # damaged, half removed, of another version: made again
    if lists.state.get("pack") != pack.id or lists.centroids.shape[1] != pack.embedding_dim \
            or sum(map(len, lists.part_ids)) >= 2 * int(lists.state["trained_on"]):  # grown
        return None
    base_ids, base_rows = lists.part_ids[0], lists.parts[0][0]
    picked = np.unique(np.linspace(0, len(base_ids) - 1, _SAMPLE).astype(np.int64))
    stored = load_faces(conn, pack, ids=base_ids[picked].tolist())
    mine = {int(f): i for i, f in zip(picked.tolist(), base_ids[picked].tolist(), strict=True)}
    same = [np.array_equal(base_rows[mine[int(f)]], row)
            for f, row in zip(stored.ids.tolist(), stored.embeddings, strict=True)]
    return lists if same and all(same) else None


def _read(folder: Path, state: dict[str, Any] | None = None) -> FaceLists:
    """The files ``lists.json`` (or ``state``) names, mapped, not read."""
    state = state or json.loads((folder / "lists.json").read_bytes())
    if state.get("version") != _VERSION:
        raise ValueError(f"lists of another version ({state.get('version')})")
    base = folder / _checked(state["base"], "base-")
    centroids = _array(base / "centroids.npy")
    parts, part_ids = [], []
    for name in [state["base"], *([state["added"]] if state["added"] else [])]:
        part = folder / _checked(name, ("base-", "added-"))
        offsets = _array(part / "offsets.npy")
        ids = np.load(part / "ids.npy", mmap_mode="r")
        rows = np.load(part / "rows.npy", mmap_mode="r")
        if (rows.dtype != np.float32 or rows.shape != (len(ids), centroids.shape[1])
                or ids.dtype != np.int64 or len(offsets) != len(centroids) + 1
                or offsets[-1] != len(ids)):
            raise ValueError(f"the files of {name} do not fit together")
        parts.append((rows, offsets))
        part_ids.append(ids)
    return FaceLists(folder, state, centroids, parts, part_ids)


def _array(path: Path) -> NDArray[Any]:
    """The array of an ``.npy`` file (never a pickle)."""
    array = np.load(path, allow_pickle=False)
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path.name} holds no array")
    return array


def _checked(name: Any, prefix: str | tuple[str, ...]) -> str:
    """A file name from ``lists.json``, which only ever names files of this folder."""
    if not isinstance(name, str) or not name.startswith(prefix) or "/" in name \
            or name in (".", "..") or "\0" in name:
        raise ValueError(f"lists.json names {name!r}")
    return name


def _built(conn: psycopg.Connection, pack: PackRow, folder: Path,
           say: Callable[[str], None]) -> FaceLists:
    """The face lists made from the pack's faces that have a person."""
    say("putting the pack's faces in lists for the runs to come (once)")
    _, seq = embeddings_changed(conn, 0)  # before the faces: a change meanwhile is seen
    faces = load_faces(conn, pack)
    given = np.flatnonzero(np.array([p is not None for p in faces.person_ids], bool))
    if len(given) == 0:
        raise ValueError("no face has a person yet")
    x = unit_rows(faces.embeddings)
    centroids = train_lists(x)
    home = nearest_lists(x, centroids, 1)[given, 0]
    order = given[np.argsort(home, kind="stable")]
    offsets = np.searchsorted(np.sort(home), np.arange(len(centroids) + 1))
    with _locked(folder, fcntl.LOCK_EX):
        name = _write_part(folder, "base", centroids, [(x, offsets, faces.ids, order)])
        _switch(folder, {"version": _VERSION, "pack": pack.id, "base": name, "added": None,
                         "top": int(faces.ids[given].max()), "trained_on": len(order),
                         "seq": seq})
        return _read(folder)


_Source = tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64],
                NDArray[np.int64] | None]
"""Rows to write in lists: (rows, offsets of each list's, their ids, and where each
list's rows are among ``rows`` when they are not in that order already)."""


def _write_part(folder: Path, kind: str, centroids: NDArray[np.float32],
                sources: list[_Source]) -> str:
    """A new folder of lists (``kind`` "base", with the ``centroids``, or "added") of the
    ``sources``' rows, list by list (each list's rows of the first source, then of the
    next …), streamed from them: no copy of them all is made. Returns its name."""
    name = f"{kind}-{os.urandom(6).hex()}"
    part = private_folder(folder / name)
    offsets = np.sum([o for _, o, _, _ in sources], axis=0)
    lists = range(len(centroids))
    picks = [[(order[o[lst]:o[lst + 1]] if order is not None else slice(o[lst], o[lst + 1]))
              for lst in lists] for _, o, _, order in sources]
    ids = np.concatenate([np.asarray(i)[at[lst]] for lst in lists
                          for (_, _, i, _), at in zip(sources, picks, strict=True)])
    files: list[tuple[str, NDArray[Any]]] = [("offsets.npy", offsets),
                                             ("ids.npy", ids.astype(np.int64))]
    if kind == "base":
        files.append(("centroids.npy", centroids))
    for file, array in files:
        with private_file(part / file, durable=True) as f:
            np.save(f, array)
    with private_file(part / "rows.npy", durable=True) as f:
        np.lib.format.write_array_header_1_0(f, {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
            "fortran_order": False, "shape": (int(offsets[-1]), centroids.shape[1])})
        for lst in lists:
            for (rows, _, _, _), at in zip(sources, picks, strict=True):
                f.write(np.ascontiguousarray(rows[at[lst]], np.float32).tobytes())
    return name


def _switch(folder: Path, state: dict[str, Any]) -> None:
    """``state`` made the lists' (on the disk first), and the files it no longer names
    removed."""
    with private_file(folder / "lists.json", durable=True) as f:
        f.write(json.dumps(state).encode())
    keep = {state["base"], state["added"], "lists.json", "lock"}
    for entry in folder.iterdir():
        if entry.name not in keep:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _added(folder: Path, faces: PackFaces, homes: NDArray[np.int64] | None = None, *,
           again: bool = True, again_ok: bool = False, seq: int | None = None) -> FaceLists:
    """The lists with ``faces`` added (``homes``: each one's list where known): those
    they hold already are left out, unless ``again_ok`` (embedded again: the new row
    replaces the old, and ``seq`` is the edit log's row they were read after). The
    added part is written again with them, or, once it has grown to
    :data:`ADDED_SHARE` of the base, a new base of both. Read again from the files only
    when ``again``."""
    with _locked(folder, fcntl.LOCK_EX):
        lists = _read(folder)
        held = np.zeros(len(faces), bool) if again_ok else faces.ids <= lists.top
        if held.any():
            held[held] = np.isin(faces.ids[held], lists.ids)
        fresh = np.flatnonzero(~held)
        state = dict(lists.state, **({"seq": seq} if seq is not None else {}))
        if len(fresh) == 0:
            if state != lists.state:
                _switch(folder, state)
            return _read(folder) if again else lists
        x = unit_rows(faces.embeddings[fresh])
        home = nearest_lists(x, lists.centroids, 1)[:, 0] if homes is None else homes[fresh]
        order = np.argsort(home, kind="stable")
        new: _Source = (x, np.searchsorted(home[order], np.arange(len(lists.centroids) + 1)),
                        faces.ids[fresh], order)
        base = len(lists.part_ids[0])
        merge = sum(map(len, lists.part_ids[1:])) + len(fresh) >= ADDED_SHARE * base
        # rows of the faces written again here are left behind, and so are (in a new
        # base) the base's rows of faces the added part holds again
        again_here = faces.ids[fresh]
        added = [_without(r, o, i, again_here)
                 for (r, o), i in zip(lists.parts[1:], lists.part_ids[1:], strict=True)]
        state["top"] = max(lists.top, int(faces.ids[fresh].max()))
        if merge:  # a new base of all
            (r, o), i = lists.parts[0], lists.part_ids[0]
            base_part = _without(r, o, i, np.concatenate(
                [again_here, *(np.asarray(x) for x in lists.part_ids[1:])]))
            state.update(base=_write_part(folder, "base", lists.centroids,
                                          [base_part, *added, new]), added=None)
        else:
            state["added"] = _write_part(folder, "added", lists.centroids, [*added, new])
        _switch(folder, state)
        return _read(folder) if again else lists


def _without(rows: NDArray[np.float32], offsets: NDArray[np.int64], ids: NDArray[np.int64],
             replaced: NDArray[np.int64]) -> _Source:
    """A part as a source to write, less the rows of the ``replaced`` faces."""
    keep = ~np.isin(ids, replaced)
    if keep.all():
        return rows, offsets, ids, None
    kept = np.flatnonzero(keep)
    return rows, np.searchsorted(kept, offsets), ids, kept


def _search(conn: psycopg.Connection, lists: FaceLists, ids: NDArray[np.int64],
            q: NDArray[np.float32], probes: NDArray[np.int64], k: int) -> Neighbors:
    """Each new face's (``ids``, unit rows ``q``, the lists it ``probes``) ``k`` nearest
    faces that have a person (as the database says now), nearest first."""
    found, sims = search_stored(q, probes, lists.parts, k + SEARCH_MARGIN)
    face = lists.faces_at(found)
    faces, person, persons, images = with_persons(conn, np.unique(face[:, :k][face[:, :k] >= 0])
                                                  .tolist())
    short = np.isin(face[:, :k], faces, invert=True).any(axis=1)
    if short.any():  # some of the k nearest have no person (now): the next ones too
        more = face[short, k:]
        extra = with_persons(conn, np.unique(more[more >= 0]).tolist())
        index = {p: i for i, p in enumerate(persons)}
        persons = persons + [p for p in extra[2] if p not in index]
        index = {p: i for i, p in enumerate(persons)}
        renumber = np.array([index[p] for p in extra[2]], np.int64)
        faces = np.concatenate([faces, extra[0]])
        person = np.concatenate([person, renumber[extra[1]]])
        images = np.concatenate([images, extra[3]])
    if len(faces) == 0:
        return NO_NEIGHBORS
    by_id = np.argsort(faces)
    at = by_id[np.minimum(np.searchsorted(faces[by_id], face), len(faces) - 1)]
    has = (face >= 0) & (faces[at] == face)
    has &= np.cumsum(has, axis=1) <= k
    rows, cols = np.nonzero(has)
    which = at[rows, cols]
    return Neighbors(ids[rows], faces[which], person[which], persons, images[which],
                     sims[rows, cols].astype(np.float64))
