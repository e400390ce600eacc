"""A user's journey through Chirp with Mastodon.py, against a running Chirp.

Usage: journey.py BASE_URL [--token-only]. Signs two people up, logs in by password (e-mail and handle),
posts with an image, follows, pages the home timeline both ways, reads a hashtag timeline,
edits profile fields, unfollows and reads the instance. Exits non-zero at the first thing
that is not as a Mastodon client expects. With --token-only it only signs one person up, posts
once and prints their token (what the Schemathesis run of scripts/mastodon-clients uses).
"""

import struct
import sys
import uuid
import zlib

from mastodon import Mastodon, MastodonAPIError, MastodonNotFoundError

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:3000"
PASSWORD = "a journey password"


def png(width, height):
    """A small opaque PNG."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\x00" + b"\x30\x80\xc0" * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


def check(cond, what):
    if not cond:
        raise SystemExit(f"journey: {what}")
    print(f"ok: {what}")


def sign_up(app_id, app_secret):
    name = "j" + uuid.uuid4().hex[:10]
    email = f"{name}@example.com"
    anon = Mastodon(client_id=app_id, client_secret=app_secret, api_base_url=BASE)
    token = anon.create_account(name, PASSWORD, email, agreement=True, locale="en")
    check(bool(token), f"signed up @{name}")
    return name, email


def log_in(app_id, app_secret, login):
    m = Mastodon(client_id=app_id, client_secret=app_secret, api_base_url=BASE)
    m.log_in(username=login, password=PASSWORD, scopes=["read", "write", "follow"])
    return m


def token_only():
    app_id, app_secret = Mastodon.create_app(
        "chirp-schemathesis", api_base_url=BASE, scopes=["read", "write", "follow"])
    name = "st" + uuid.uuid4().hex[:10]
    anon = Mastodon(client_id=app_id, client_secret=app_secret, api_base_url=BASE)
    token = anon.create_account(name, PASSWORD, f"{name}@example.com", agreement=True)
    Mastodon(access_token=token, api_base_url=BASE).status_post("something to read #schemathesis")
    print(token)


def main():
    app_id, app_secret = Mastodon.create_app(
        "chirp-journey", api_base_url=BASE, scopes=["read", "write", "follow"])
    check(app_id and app_secret, "registered an application")

    alice, alice_email = sign_up(app_id, app_secret)
    bob, _ = sign_up(app_id, app_secret)

    # Log in by password, once by e-mail and once by handle.
    a = log_in(app_id, app_secret, alice_email)
    b = log_in(app_id, app_secret, bob)
    me = a.me()
    check(me.username == alice and me.acct == alice, "logged in by e-mail as alice")
    check(b.me().username == bob, "logged in by handle as bob")
    try:
        log_in(app_id, app_secret, "nobody@example.com")
        check(False, "a wrong log-in is refused")
    except Exception:  # Mastodon.py raises its own error for a refused grant
        check(True, "a wrong log-in is refused")

    # The instance.
    info = a.instance()
    check(info.version.startswith("4.2.0+chirp."), f"instance version {info.version}")
    check(info.configuration.statuses.max_characters == 140, "140 characters a post")

    # Bob posts with an image and a hashtag.
    tag = "journey" + uuid.uuid4().hex[:6]
    media = b.media_post(png(12, 8), mime_type="image/png", description="a blue rectangle")
    check(media.url and media.type == "image", "uploaded an image")
    check(media.meta.original.width == 12, "the image's size is known")
    first = b.status_post(f"first post #{tag}", media_ids=[media])
    check(first.media_attachments[0].description == "a blue rectangle",
          "the image keeps its description")
    check(f"/tags/{tag}" in first.content, "the hashtag is linked in the content")
    check(first.tags[0].name == tag, "the status lists its hashtag")

    # Alice follows Bob: his posts reach her home timeline, newest first.
    rel = a.account_follow(b.me().id)
    check(rel.following, "alice follows bob")
    posts = [first] + [b.status_post(f"post {i} #{tag}") for i in range(1, 6)]
    ids = [p.id for p in posts]

    def home_ids(**kw):
        return [s.id for s in a.timeline_home(**kw) if s.account.username == bob]

    for _ in range(100):
        if set(ids) <= set(home_ids(limit=40)):
            break
    check(set(ids) <= set(home_ids(limit=40)), "bob's posts are in alice's home timeline")

    # Page the home timeline two at a time, both ways.
    page = a.timeline_home(limit=2)
    seen = [s.id for s in page]
    while True:
        page = a.fetch_next(page)
        if not page:
            break
        seen += [s.id for s in page]
    mine = [i for i in seen if i in ids]
    check(mine == sorted(ids, key=int, reverse=True), "fetch_next pages down, newest first")
    check(len(seen) == len(set(seen)), "no status twice across pages")
    older = a.timeline_home(max_id=ids[3], limit=2)
    check([s.id for s in older] == [ids[2], ids[1]], "max_id: the page just older")
    newer = a.fetch_previous(older)
    check([s.id for s in newer] == [ids[4], ids[3]],
          f"fetch_previous returns the page just newer ({[s.id for s in newer]})")
    since = a.timeline_home(since_id=ids[3], limit=40)
    check([s.id for s in since if s.id in ids] == [ids[5], ids[4]], "since_id")

    # The hashtag timeline, without a token too.
    anon = Mastodon(api_base_url=BASE)
    tagged = [s.id for s in anon.timeline_hashtag(tag, limit=40)]
    check(tagged == sorted(ids, key=int, reverse=True), "hashtag timeline, anonymously")
    found = a.search_v2(tag, result_type="hashtags")
    check([h.name for h in found.hashtags] == [tag], "hashtag search")
    found = a.search_v2(bob, result_type="accounts")
    check([x.username for x in found.accounts] == [bob], "account search")

    # Profile fields.
    a.account_update_credentials(
        note="Walks a lot", fields=[("Home", "Lisbon"), ("Web", "https://example.com")])
    me = a.me()
    check([(f.name, f.value) for f in me.fields] == [("Home", "Lisbon"),
                                                     ("Web", "https://example.com")],
          "profile fields")
    check(me.source.note == "Walks a lot", "the note's source")
    seen_by_bob = b.account(me.id)
    check(len(seen_by_bob.fields) == 2 and "Walks a lot" in seen_by_bob.note,
          "others see the fields and the note")

    # Nobody acts as someone else: Bob cannot delete Alice's post.
    hers = a.status_post("mine alone")
    try:
        b.status_delete(hers.id)
        check(False, "bob cannot delete alice's post")
    except MastodonAPIError:
        check(a.status(hers.id).id == hers.id, "bob cannot delete alice's post")

    # Unfollow: Bob's later posts stay out of Alice's home timeline.
    rel = a.account_unfollow(b.me().id)
    check(not rel.following, "alice unfollows bob")
    later = b.status_post("after the unfollow")
    check(later.id not in [s.id for s in a.timeline_home(limit=40)],
          "a post after the unfollow is not in alice's home")
    a.status_delete(hers.id)
    try:
        a.status(hers.id)
        check(False, "a deleted post is gone")
    except MastodonNotFoundError:
        check(True, "a deleted post is gone")
    print("journey: all steps passed")


if __name__ == "__main__":
    if "--token-only" in sys.argv:
        token_only()
    else:
        main()
