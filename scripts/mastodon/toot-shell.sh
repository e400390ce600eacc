#!/usr/bin/env bash
# toot from the shell against a running Chirp, as a person would use it: log in with a
# password (`toot login_cli`) and through the browser flow (`toot login`, the code from
# Chirp's log-in page pasted back), post, read timelines, whoami.
#   toot-shell.sh BASE_URL VENV
set -euo pipefail
base=$1
venv=$2
toot=$venv/bin/toot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_CONFIG_HOME=$work/config

fail() {
    echo "toot-shell: $*" >&2
    exit 1
}

name=s$(head -c 5 /dev/urandom | od -An -tx1 | tr -d ' \n')
email=$name@example.com
password="a shell password"
tag=tag$name

# An account to log in with, signed up through the API as a client would.
"$venv/bin/python" - "$base" "$name" "$email" "$password" <<'EOF'
import sys
from mastodon import Mastodon
base, name, email, password = sys.argv[1:]
cid, secret = Mastodon.create_app("toot-shell", api_base_url=base, scopes=["read", "write"])
Mastodon(client_id=cid, client_secret=secret, api_base_url=base).create_account(
    name, password, email, agreement=True)
EOF

out=$("$toot" login_cli --instance "$base" --email "$email" --password "$password")
grep -q "Successfully logged in" <<<"$out" || fail "login_cli: $out"
echo "ok: toot login_cli"

out=$("$toot" whoami)
grep -q "@$name" <<<"$out" || fail "whoami: $out"
echo "ok: toot whoami"

out=$("$toot" post "hello from the shell #$tag")
id=$(sed -n 's|^Toot posted: .*/||p' <<<"$out")
[[ -n $id ]] || fail "post: $out"
echo "ok: toot post ($id)"

for args in "" "--tag $tag" "--public" "--account $name"; do
    # shellcheck disable=SC2086
    out=$("$toot" timeline --once $args)
    grep -q "hello from the shell" <<<"$out" || fail "timeline $args: $out"
    echo "ok: toot timeline $args"
done

# The browser flow: toot prints the log-in URL and waits for the code the page shows.
"$toot" logout "$name@${base#http://}" >/dev/null
mkfifo "$work/in"
"$toot" login --instance "$base" <"$work/in" >"$work/login.out" 2>&1 &
toot_pid=$!
exec 3>"$work/in"
url=""
for _ in $(seq 100); do
    url=$(grep -m1 '/oauth/authorize' "$work/login.out" || true)
    [[ -n $url ]] && break
    sleep 0.1
done
[[ -n $url ]] || fail "toot login printed no URL: $(cat "$work/login.out")"
query=${url#*\?}
client_id=$(tr '&' '\n' <<<"$query" | sed -n 's/^client_id=//p')
page=$(curl -sf "$url") || fail "the log-in page did not load: $url"
grep -q '<form method="post" action="/oauth/authorize">' <<<"$page" || fail "no log-in form: $page"
answer=$(curl -sf "$base/oauth/authorize" \
    --data-urlencode "client_id=$client_id" \
    --data-urlencode "redirect_uri=urn:ietf:wg:oauth:2.0:oob" \
    --data-urlencode "scope=read write follow" \
    --data-urlencode "response_type=code" \
    --data-urlencode "username=$email" \
    --data-urlencode "password=$password") || fail "the log-in was refused"
code=$(sed -n 's|.*<code id="code">\([^<]*\)</code>.*|\1|p' <<<"$answer")
[[ -n $code ]] || fail "no code on the page: $answer"
printf 'n\n%s\n' "$code" >&3
exec 3>&-
wait "$toot_pid" || fail "toot login failed: $(cat "$work/login.out")"
grep -q "Successfully logged in" "$work/login.out" || fail "toot login: $(cat "$work/login.out")"
echo "ok: toot login (browser flow, code pasted)"

out=$("$toot" timeline --once)
grep -q "hello from the shell" <<<"$out" || fail "timeline after the browser log-in: $out"
echo "ok: toot timeline with the code's token"
echo "toot-shell: all steps passed"
