"""One contract, every backend: embedded SQLite, MongoDB over mongomock, and a real MongoDB.

The real server runs only when ``BOOKOPS_TEST_MONGO_URI`` is set; it is read at import time
because the autouse ``clean_environ`` fixture removes every ``BOOKOPS_*`` variable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from bookops.errors import StoreError
from bookops.schema import (
    Book,
    CallRecord,
    HistoryEvent,
    JobRecord,
    JobStatus,
    OcrResult,
    Page,
    PageSource,
    SourceFile,
    Toc,
    TocEntry,
    ocr_result_id,
)
from bookops.store import Backend, Collection, Store
from bookops.store._mongo import MongoBackend
from bookops.store._sqlite import SqliteBackend

from ._mongomock_async import AsyncMockDatabase

MONGO_URI = os.environ.get("BOOKOPS_TEST_MONGO_URI")
NO_MONGO = "set BOOKOPS_TEST_MONGO_URI to run against a real MongoDB"


@pytest.fixture(params=[
    "sqlite",
    "mongomock",
    pytest.param("mongo", marks=pytest.mark.skipif(not MONGO_URI, reason=NO_MONGO)),
])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        be: Backend = SqliteBackend(tmp_path / "store" / "bookops.sqlite3", timeout_s=5)
        await be.connect()
        yield be
        await be.close()
    elif request.param == "mongomock":
        be = MongoBackend(cast(Any, AsyncMockDatabase()), where="mongomock")
        await be.connect()
        yield be
        await be.close()
    else:
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO_URI, serverSelectionTimeoutMS=5000)
        name = f"bookops_test_{uuid.uuid4().hex[:12]}"
        be = MongoBackend(client[name], where="test server")
        try:
            await be.connect()
            yield be
        finally:
            await client.drop_database(name)
            await client.close()


def ids(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["_id"] for d in docs)


# Values chosen so type confusions show: true vs 1, 2 vs "2" vs 2.0, null vs missing.
DOCS: list[dict[str, Any]] = [
    {"_id": "a", "n": 1, "s": "x", "flag": True, "nested": {"k": "v", "deep": {"z": 1}}, "opt": None},
    {"_id": "b", "n": 2, "s": "y", "flag": False, "nested": {"k": "w"}, "opt": "set"},
    {"_id": "c", "n": 3, "s": "1", "flag": 1, "nested": {"k": "v"}},
    {"_id": "d", "n": "2", "s": "z"},
    {"_id": "e", "n": 2.0, "s": "x", "flag": None},
]


@pytest.fixture
async def books(backend: Backend) -> Collection:
    coll = backend.collection("books")
    assert await coll.insert_many([dict(d) for d in DOCS]) == len(DOCS)
    return coll


FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["a", "b", "c", "d", "e"]),
    ({"n": 2}, ["b", "e"]),
    ({"n": "2"}, ["d"]),
    ({"n": {"$eq": 3}}, ["c"]),
    ({"flag": True}, ["a"]),
    ({"flag": 1}, ["c"]),
    ({"flag": False}, ["b"]),
    ({"flag": None}, ["d", "e"]),
    ({"opt": None}, ["a", "c", "d", "e"]),
    ({"opt": {"$exists": True}}, ["a", "b"]),
    ({"opt": {"$exists": False}}, ["c", "d", "e"]),
    ({"flag": {"$exists": True}}, ["a", "b", "c", "e"]),
    ({"nested.k": "v"}, ["a", "c"]),
    ({"nested.deep.z": 1}, ["a"]),
    ({"nested.deep": {"$exists": True}}, ["a"]),
    ({"nested": {"k": "w"}}, ["b"]),
    ({"nested.k": {"$ne": "v"}}, ["b", "d", "e"]),
    ({"flag": {"$ne": None}}, ["a", "b", "c"]),
    ({"flag": {"$ne": True}}, ["b", "c", "d", "e"]),
    ({"n": {"$in": [1, "2"]}}, ["a", "d"]),
    ({"n": {"$in": []}}, []),
    ({"s": {"$in": ["x", "1"]}}, ["a", "c", "e"]),
    ({"flag": {"$in": [True, None]}}, ["a", "d", "e"]),
    ({"n": {"$nin": [1, 2]}}, ["c", "d"]),
    ({"opt": {"$nin": [None]}}, ["b"]),
    ({"n": {"$gt": 1}}, ["b", "c", "e"]),
    ({"n": {"$gte": 2, "$lt": 3}}, ["b", "e"]),
    ({"n": {"$lte": 1}}, ["a"]),
    ({"s": {"$gt": "x"}}, ["b", "d"]),
    ({"s": {"$lt": "x"}}, ["c"]),
    ({"$or": [{"n": 1}, {"s": "z"}]}, ["a", "d"]),
    ({"s": "x", "$or": [{"n": 1}, {"n": 3}]}, ["a"]),
    ({"$or": [{"opt": {"$exists": True}}, {"nested.k": "v"}]}, ["a", "b", "c"]),
    ({"_id": "a"}, ["a"]),
    ({"_id": {"$in": ["a", "c", "zz"]}}, ["a", "c"]),
    ({"_id": {"$ne": "a"}}, ["b", "c", "d", "e"]),
    ({"_id": {"$gt": "c"}}, ["d", "e"]),
    ({"_id": {"$exists": True}, "s": "x"}, ["a", "e"]),
]


# mongomock compares with Python's ==, where True == 1; MongoDB and the embedded store do not.
MONGOMOCK_BOOL_IS_INT = [
    {"flag": True}, {"flag": 1}, {"flag": {"$ne": True}}, {"flag": {"$in": [True, None]}},
]


def is_mongomock(backend: Backend) -> bool:
    return isinstance(getattr(backend, "db", None), AsyncMockDatabase)


@pytest.mark.parametrize(("flt", "expected"), FILTER_CASES, ids=[repr(c[0]) for c in FILTER_CASES])
async def test_filter(request: pytest.FixtureRequest, backend: Backend, books: Collection,
                      flt: dict[str, Any], expected: list[str]) -> None:
    if is_mongomock(backend) and flt in MONGOMOCK_BOOL_IS_INT:
        request.applymarker(pytest.mark.xfail(strict=True, reason="mongomock treats True as 1"))
    assert ids(await books.find(flt)) == expected
    assert await books.count(flt) == len(expected)


async def test_get(books: Collection) -> None:
    assert await books.get("b") == DOCS[1]
    assert await books.get("nope") is None


async def test_sort_and_limit(backend: Backend) -> None:
    coll = backend.collection("history")
    docs = [{"_id": f"h{i}", "book": "x", "g": g, "v": v, "m": {"k": 10 - i}}
            for i, (g, v) in enumerate([(2, "a"), (1, "b"), (2, "c"), (1, "a"), (3, "b")])]
    await coll.insert_many(docs)
    got = await coll.find({}, sort=[("g", 1), ("v", -1)])
    assert [(d["g"], d["v"]) for d in got] == [(1, "b"), (1, "a"), (2, "c"), (2, "a"), (3, "b")]
    got = await coll.find({}, sort=[("g", -1), ("v", 1)])
    assert [(d["g"], d["v"]) for d in got] == [(3, "b"), (2, "a"), (2, "c"), (1, "a"), (1, "b")]
    assert [d["_id"] for d in await coll.find({}, sort=[("m.k", 1)], limit=2)] == ["h4", "h3"]
    assert [d["_id"] for d in await coll.find({"g": 2}, sort=[("_id", -1)], limit=1)] == ["h2"]
    assert len(await coll.find({}, limit=3)) == 3


async def test_sort_puts_missing_and_null_first(backend: Backend) -> None:
    coll = backend.collection("books")
    await coll.insert_many([{"_id": "1", "k": 5}, {"_id": "2"}, {"_id": "3", "k": 1},
                            {"_id": "4", "k": None}])
    got = [d["_id"] for d in await coll.find({}, sort=[("k", 1), ("_id", 1)])]
    assert got == ["2", "4", "3", "1"]


async def test_put_replaces_whole_document(backend: Backend) -> None:
    coll = backend.collection("books")
    await coll.put({"_id": "p", "a": 1, "b": {"c": 2}})
    await coll.put({"_id": "p", "z": True})
    assert await coll.get("p") == {"_id": "p", "z": True}
    assert await coll.count() == 1


async def test_insert_many_ignores_or_refuses_existing(backend: Backend) -> None:
    coll = backend.collection("books")
    assert await coll.insert_many([]) == 0
    assert await coll.insert_many([{"_id": "1", "v": 1}, {"_id": "2", "v": 1}]) == 2
    assert await coll.insert_many([{"_id": "2", "v": 2}, {"_id": "3", "v": 2}]) == 1
    assert (await coll.get("2") or {})["v"] == 1, "an existing document is left as it was"
    with pytest.raises(StoreError):
        await coll.insert_many([{"_id": "1", "v": 3}, {"_id": "4", "v": 3}], ignore_existing=False)
    assert (await coll.get("1") or {})["v"] == 1
    assert await coll.get("4") is not None, "the new documents are inserted, as an unordered insert does"


async def test_unique_index_refuses_a_second_page_with_the_same_number(backend: Backend) -> None:
    pages = backend.collection("pages")
    await pages.put({"_id": "b:0001", "book": "b", "page_num": 1})
    with pytest.raises(StoreError):
        await pages.put({"_id": "other", "book": "b", "page_num": 1})
    assert await pages.count({"book": "b"}) == 1


async def test_patch_operators(backend: Backend) -> None:
    coll = backend.collection("books")
    await coll.put({"_id": "p", "a": 1, "drop": "x", "keep": {"x": 1, "y": 2}, "cnt": 5})
    assert await coll.patch({"_id": "p"}, {
        "$set": {"new.deep.field": "v", "keep.x": 10},
        "$unset": {"drop": "", "keep.y": "", "not.there": ""},
        "$inc": {"cnt": 2, "fresh": 1.5},
        "$setOnInsert": {"only_on_insert": True},
    })
    assert await coll.get("p") == {"_id": "p", "a": 1, "keep": {"x": 10}, "cnt": 7, "fresh": 1.5,
                                   "new": {"deep": {"field": "v"}}}
    assert not await coll.patch({"_id": "missing"}, {"$set": {"a": 1}})
    assert await coll.get("missing") is None


async def test_patch_updates_only_the_first_match(backend: Backend) -> None:
    coll = backend.collection("books")
    await coll.insert_many([{"_id": "1", "t": "x"}, {"_id": "2", "t": "x"}])
    assert await coll.patch({"t": "x"}, {"$set": {"hit": True}})
    assert await coll.count({"hit": True}) == 1


async def test_patch_upsert(backend: Backend) -> None:
    coll = backend.collection("books")
    assert await coll.patch({"_id": "u", "kind": "k", "n": {"$gt": 3}},
                            {"$set": {"a.b": 1}, "$setOnInsert": {"created": "now"}, "$inc": {"c": 1}},
                            upsert=True)
    assert await coll.get("u") == {"_id": "u", "kind": "k", "a": {"b": 1}, "created": "now", "c": 1}
    assert await coll.patch({"_id": "u"}, {"$setOnInsert": {"created": "later"}, "$inc": {"c": 1}},
                            upsert=True)
    doc = await coll.get("u") or {}
    assert (doc["created"], doc["c"]) == ("now", 2)
    # No _id in the filter: the new document still gets a string id.
    assert await coll.patch({"tag": "t"}, {"$set": {"v": 1}}, upsert=True)
    made = await coll.find({"tag": "t"})
    assert len(made) == 1 and isinstance(made[0]["_id"], str) and made[0]["v"] == 1


async def test_patch_many(backend: Backend) -> None:
    coll = backend.collection("books")
    await coll.insert_many([{"_id": str(i), "even": i % 2 == 0, "n": i} for i in range(6)])
    assert await coll.patch_many({"even": True}, {"$set": {"m.seen": True}, "$inc": {"n": 100}}) == 3
    assert ids(await coll.find({"m.seen": True})) == ["0", "2", "4"]
    assert [d["n"] for d in await coll.find({}, sort=[("_id", 1)])] == [100, 1, 102, 3, 104, 5]
    assert await coll.patch_many({"even": "no"}, {"$set": {"x": 1}}) == 0


async def test_delete_and_count(backend: Backend) -> None:
    coll = backend.collection("books")
    await coll.insert_many([{"_id": str(i), "g": i % 3} for i in range(9)])
    assert await coll.count() == 9
    assert await coll.count({"g": 1}) == 3
    assert await coll.delete({"g": {"$in": [0, 1]}}) == 6
    assert await coll.delete({"g": 0}) == 0
    assert ids(await coll.find()) == ["2", "5", "8"]


async def test_claim(backend: Backend) -> None:
    coll = backend.collection("leases")
    await coll.put({"_id": "held", "owner": "a", "until": 100})
    # match: the updated document comes back
    got = await coll.claim({"_id": "held", "owner": "a"}, {"$set": {"until": 200}})
    assert got == {"_id": "held", "owner": "a", "until": 200}
    # no match, no upsert
    assert await coll.claim({"_id": "held", "owner": "b"}, {"$set": {"until": 300}}) is None
    assert await coll.claim({"_id": "free"}, {"$set": {"owner": "b"}}) is None
    assert await coll.get("free") is None
    # upsert inserts a free id
    got = await coll.claim({"_id": "free", "$or": [{"until": {"$lt": 50}}, {"owner": "b"}]},
                           {"$set": {"owner": "b", "until": 60}}, upsert=True)
    assert got == {"_id": "free", "owner": "b", "until": 60}
    # upsert on an id held by someone else: refused, the holder's document untouched
    got = await coll.claim({"_id": "held", "$or": [{"until": {"$lt": 150}}, {"owner": "c"}]},
                           {"$set": {"owner": "c", "until": 999}}, upsert=True)
    assert got is None
    assert await coll.get("held") == {"_id": "held", "owner": "a", "until": 200}
    # expired: taken over
    got = await coll.claim({"_id": "held", "$or": [{"until": {"$lt": 250}}, {"owner": "c"}]},
                           {"$set": {"owner": "c", "until": 999}}, upsert=True)
    assert got == {"_id": "held", "owner": "c", "until": 999}


async def test_bad_update_is_a_store_error(backend: Backend) -> None:
    coll = backend.collection("books")
    await coll.put({"_id": "x", "s": "text"})
    with pytest.raises(StoreError):
        await coll.patch({"_id": "x"}, {"$inc": {"s": 1}})
    assert await coll.get("x") == {"_id": "x", "s": "text"}


# ---------------------------------------------------------------------------------- the domain Store
@pytest.fixture
def store(backend: Backend) -> Store:
    return Store(backend)


def make_book(book_id: str, pages: int) -> tuple[Book, list[Page]]:
    book = Book(id=book_id, name=book_id,
                sources=[SourceFile(path=f"{book_id}.pdf", sha256="0" * 64, kind="pdf", page_count=pages)],
                page_count=pages)
    return book, [Page.new(book_id, n, PageSource(file=0, index=n - 1)) for n in range(1, pages + 1)]


async def test_add_book_is_idempotent(store: Store) -> None:
    book, pages = make_book("alpha", 4)
    assert await store.add_book(book, pages)
    assert not await store.add_book(book, pages)
    assert (await store.get_book("alpha") or book).page_count == 4
    assert await store.count_pages("alpha") == 4
    other, other_pages = make_book("beta", 1)
    await store.add_book(other, other_pages)
    assert [b.id for b in await store.list_books()] == ["alpha", "beta"]
    assert await store.get_book("nope") is None


async def test_pages_listing_and_patching(store: Store) -> None:
    await store.add_book(*make_book("b", 5))
    assert [p.page_num for p in await store.list_pages("b")] == [1, 2, 3, 4, 5]
    assert [p.page_num for p in await store.list_pages("b", pages=[4, 2, 2, 9])] == [2, 4]
    assert await store.patch_page("b", 3, {"$set": {"extracted": True, "ocr.tesseract.done": True,
                                                    "ocr.tesseract.chars": 120}})
    assert not await store.patch_page("b", 99, {"$set": {"extracted": True}})
    page = await store.get_page("b", 3)
    assert page is not None and page.extracted and page.ocr["tesseract"].done
    assert page.ocr["tesseract"].chars == 120
    assert [p.page_num for p in await store.list_pages("b", where={"extracted": False})] == [1, 2, 4, 5]
    assert await store.count_pages("b", {"ocr.tesseract.done": {"$ne": True}}) == 4
    assert await store.patch_pages("b", {"page_num": {"$lte": 2}}, {"$set": {"labeled": True}}) == 2
    assert [p.page_num for p in await store.list_pages("b", where={"labeled": True})] == [1, 2]
    assert await store.count_pages("b", {"ocr.tesseract": {"$exists": True}}) == 1


async def test_ocr_results(store: Store) -> None:
    for page, provider, text in [(1, "tesseract", "one"), (1, "openai", "One"), (2, "tesseract", "two")]:
        await store.put_ocr_result(OcrResult(id=ocr_result_id("b", page, provider), book="b",
                                             page_num=page, provider=provider, text=text))
    # Rewriting a result replaces it, never duplicates it.
    await store.put_ocr_result(OcrResult(id=ocr_result_id("b", 2, "tesseract"), book="b", page_num=2,
                                         provider="tesseract", text="two!"))
    assert [r.provider for r in await store.get_ocr_results("b", 1)] == ["openai", "tesseract"]
    got = await store.list_ocr_results("b", provider="tesseract")
    assert [(r.page_num, r.text) for r in got] == [(1, "one"), (2, "two!")]
    assert [r.page_num for r in await store.list_ocr_results("b", pages=[2])] == [2]
    assert [(r.page_num, r.provider) for r in await store.list_ocr_results("b")] == [
        (1, "openai"), (1, "tesseract"), (2, "tesseract")]


async def test_toc_put_get_delete(store: Store) -> None:
    assert await store.get_toc("b") is None
    await store.put_toc(Toc(id="b", book="b", found=True, pages=[5, 6],
                            entries=[TocEntry(title="Intro", printed_page="1")]))
    await store.put_toc(Toc(id="b", book="b", found=True, pages=[5],
                            entries=[TocEntry(title="Preface", printed_page="ix", level=1)]))
    toc = await store.get_toc("b")
    assert toc is not None and toc.pages == [5] and [e.title for e in toc.entries] == ["Preface"]
    await store.delete_toc("b")
    assert await store.get_toc("b") is None


async def test_jobs(store: Store) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i, (book, status) in enumerate([("b", "running"), ("b", "succeeded"), ("c", "running")]):
        await store.put_job(JobRecord(id=f"j{i}", kind="process-pages", book=book, status=JobStatus(status),
                                      created_at=t0 + timedelta(minutes=10 - i)))
    assert [j.id for j in await store.list_jobs()] == ["j2", "j1", "j0"]
    assert [j.id for j in await store.list_jobs("b")] == ["j1", "j0"]
    assert [j.id for j in await store.list_jobs(status="running")] == ["j2", "j0"]
    assert await store.patch_job("j0", {"$set": {"status": "failed", "error": "boom"},
                                        "$inc": {"progress.ocr.done": 3}})
    job = await store.get_job("j0")
    assert job is not None and job.status == JobStatus.failed and job.progress["ocr"].done == 3
    assert await store.get_job("nope") is None


async def test_leases(store: Store) -> None:
    now = 1_000_000.0
    lease = await store.claim_lease("b", "job1", ttl_s=60, host="h1", pid=1, now=now)
    assert lease is not None
    assert (lease.job, lease.expires_at, lease.host, lease.pid) == ("job1", now + 60, "h1", 1)
    # A second claimant is refused while the lease lives; the holder may claim again.
    assert await store.claim_lease("b", "job2", ttl_s=60, host="h2", pid=2, now=now + 30) is None
    again = await store.claim_lease("b", "job1", ttl_s=60, host="h1", pid=1, now=now + 30)
    assert again is not None and again.expires_at == now + 90
    # Expired: taken over.
    taken = await store.claim_lease("b", "job2", ttl_s=60, host="h2", pid=2, now=now + 91)
    assert taken is not None and (taken.job, taken.host) == ("job2", "h2")
    assert not await store.renew_lease("b", "job1", ttl_s=60)
    assert await store.renew_lease("b", "job2", ttl_s=60)
    await store.release_lease("b", "job1")
    assert (await store.get_lease("b") or taken).job == "job2"
    await store.release_lease("b", "job2")
    assert await store.get_lease("b") is None
    assert await store.claim_lease("b", "job3", ttl_s=60, host="h3", pid=3) is not None


async def test_history_order_and_filters(store: Store) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    events = [HistoryEvent(id=f"e{i}", book="b", op=op, event=ev, job="j", at=t0 + timedelta(seconds=s))
              for i, (op, ev, s) in enumerate([("ocr", "ocr.done", 3), ("toc", "toc.reset", 1),
                                               ("ocr", "ocr.done", 2), ("ocr", "ocr.failed", 1)])]
    await store.add_history(events)
    await store.add_history([])
    await store.add_history([HistoryEvent(id="other", book="c", event="x", at=t0)])
    assert [e.id for e in await store.list_history("b")] == ["e1", "e3", "e2", "e0"]
    assert [e.id for e in await store.list_history("b", event="ocr.done")] == ["e2", "e0"]
    assert [e.id for e in await store.list_history("b", op="ocr", limit=2)] == ["e3", "e2"]


async def test_calls_cache_lookup(store: Store) -> None:
    def call(i: int, *, outcome: str = "ok", response: str | None = "answer", book: str = "b") -> CallRecord:
        return CallRecord(id=f"c{i}", book=book, op="toc_find", provider="openai", request_hash=f"h{i % 2}",
                          outcome=outcome, response=response)

    await store.put_call(call(0, outcome="error", response=None))
    await store.put_call(call(2, response=None))
    assert await store.find_cached_call("h0") is None
    await store.put_call(call(4))
    hit = await store.find_cached_call("h0")
    assert hit is not None and (hit.id, hit.response) == ("c4", "answer")
    assert await store.find_cached_call("h9") is None
    await store.put_call(call(1, book="c"))
    assert [c.id for c in await store.list_calls("b")] == sorted(["c0", "c2", "c4"])


async def test_delete_book_removes_everything(store: Store) -> None:
    for book_id in ("gone", "kept"):
        await store.add_book(*make_book(book_id, 3))
        await store.put_ocr_result(OcrResult(id=ocr_result_id(book_id, 1, "t"), book=book_id, page_num=1,
                                             provider="t", text="x"))
        await store.put_toc(Toc(id=book_id, book=book_id))
        await store.put_job(JobRecord(id=f"job-{book_id}", kind="k", book=book_id))
        await store.claim_lease(book_id, f"job-{book_id}", ttl_s=60, host="h", pid=1)
        await store.add_history([HistoryEvent(id=f"ev-{book_id}", book=book_id, event="x")])
        await store.put_call(CallRecord(id=f"call-{book_id}", book=book_id, op="o", provider="p",
                                        request_hash="r"))
    await store.delete_book("gone")
    assert await store.get_book("gone") is None
    for coll in (store.pages, store.ocr_results, store.tocs, store.jobs, store.history, store.calls):
        assert await coll.count({"book": "gone"}) == 0, coll.name
        assert await coll.count({"book": "kept"}) > 0, coll.name
    assert await store.get_lease("gone") is None
    assert await store.get_lease("kept") is not None
    assert await store.get_book("kept") is not None
