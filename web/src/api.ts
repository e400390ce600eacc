// The Chirp HTTP API as the client uses it (README.md documents the contract). Every failure
// becomes an ApiError carrying the problem-details fields, so views can show `detail` and
// highlight `field`.

/** A user's public profile. */
export interface Profile {
  id: string;
  handle: string;
  display_name: string;
  bio: string;
  avatar_url: string | null;
  created_at: string;
  followers_count: number;
  following_count: number;
  tweet_count: number;
  extra: Record<string, unknown>;
}

/** An image attached to a tweet. */
export interface Media {
  id: string;
  url: string;
  content_type: string;
  width: number;
  height: number;
}

/** A tweet. */
export interface Tweet {
  id: string;
  author_id: string;
  author_handle: string;
  text: string;
  hashtags: string[];
  media: Media[];
  created_at: string;
  extra: Record<string, unknown>;
}

/** One page of a list; `next_cursor` is null on the last page. */
export interface TweetPage {
  tweets: Tweet[];
  next_cursor: string | null;
}

/** One page of users. */
export interface UserPage {
  users: Profile[];
  next_cursor: string | null;
}

/** What `POST /media` answers. */
export interface Upload extends Media {
  bytes: number;
}

/** The logged-in user, kept in localStorage. */
export interface Session {
  token: string;
  user_id: string;
  handle: string;
}

const SESSION_KEY = "chirp.session";

/** An API failure: the problem-details body, or a stand-in for network failures (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly field: string | null,
  ) {
    super(detail);
  }
}

/** The stored session, if any. */
export function currentSession(): Session | null {
  try {
    const raw = localStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Partial<Session>;
    return s.token && s.user_id && s.handle ? (s as Session) : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session): void {
  localStorage.setItem(SESSION_KEY, JSON.stringify(s));
}

export function clearSession(): void {
  localStorage.removeItem(SESSION_KEY);
}

/** Called when the server refuses our token, so the app can send the person to log in. */
let onExpired: () => void = () => {};
export function setExpiredHandler(f: () => void): void {
  onExpired = f;
}

interface Options {
  json?: unknown;
  raw?: Blob;
  auth?: boolean;
}

async function request<T>(method: string, path: string, opts: Options = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  let body: BodyInit | undefined;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  } else if (opts.raw !== undefined) {
    headers["Content-Type"] = opts.raw.type || "application/octet-stream";
    body = opts.raw;
  }
  const session = opts.auth ? currentSession() : null;
  if (session) headers.Authorization = `Bearer ${session.token}`;
  let resp: Response;
  try {
    resp = await fetch(path, { method, headers, body });
  } catch {
    throw new ApiError(0, "Offline", "Chirp could not reach the server. Check your connection and try again.", null);
  }
  if (resp.status === 204) return undefined as T;
  const text = await resp.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // A proxy's HTML error page, say: fall through to a generic message.
  }
  if (resp.ok) return parsed as T;
  const p = (parsed ?? {}) as { title?: string; detail?: string; field?: string };
  const err = new ApiError(
    resp.status,
    p.title ?? resp.statusText,
    p.detail ?? `The server answered ${resp.status} ${resp.statusText}.`,
    p.field ?? null,
  );
  if (resp.status === 401 && session) {
    clearSession();
    onExpired();
  }
  throw err;
}

const q = (params: Record<string, string | number | null | undefined>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) s.set(k, String(v));
  const out = s.toString();
  return out ? `?${out}` : "";
};

/** `@handle` or a numeric id, as a path segment. */
const userRef = (handleOrId: string) =>
  /^\d+$/.test(handleOrId) ? handleOrId : `@${encodeURIComponent(handleOrId.replace(/^@/, ""))}`;

export const api = {
  signUp: (handle: string, password: string, display_name?: string) =>
    request<Profile>("POST", "/users", { json: display_name ? { handle, password, display_name } : { handle, password } }),
  logIn: (handle: string, password: string) =>
    request<{ token: string; user_id: string }>("POST", "/sessions", { json: { handle, password } }),
  logOut: () => request<void>("DELETE", "/sessions", { auth: true }),
  profile: (user: string) => request<Profile>("GET", `/${userRef(user)}/profile`),
  updateProfile: (user: string, patch: Record<string, unknown>) =>
    request<Profile>("PATCH", `/${userRef(user)}/profile`, { json: patch, auth: true }),
  feed: (cursor?: string | null, limit = 20) => request<TweetPage>("GET", `/feed${q({ limit, cursor })}`, { auth: true }),
  userTweets: (user: string, cursor?: string | null) =>
    request<TweetPage>("GET", `/${userRef(user)}/tweets${q({ limit: 20, cursor })}`),
  searchTag: (tag: string, cursor?: string | null) =>
    request<TweetPage>("GET", `/search/tags/${encodeURIComponent(tag)}${q({ limit: 20, cursor })}`),
  followers: (user: string, cursor?: string | null, limit = 50) =>
    request<UserPage>("GET", `/${userRef(user)}/followers${q({ limit, cursor })}`),
  following: (user: string, cursor?: string | null, limit = 50) =>
    request<UserPage>("GET", `/${userRef(user)}/following${q({ limit, cursor })}`),
  follow: (me: string, other: string, on: boolean) =>
    request<{ following: boolean }>(on ? "POST" : "DELETE", `/${me}/follow/${other}`, { auth: true }),
  post: (text: string, media: string[]) =>
    request<Tweet>("POST", "/tweet", { json: media.length ? { text, media } : { text }, auth: true }),
  deleteTweet: (id: string) => request<void>("DELETE", `/tweets/${encodeURIComponent(id)}`, { auth: true }),
  upload: (file: Blob) => request<Upload>("POST", "/media", { raw: file, auth: true }),
};

/** True when newer: tweet ids are time-ordered 64-bit integers sent as strings. */
export const newer = (a: string, b: string) => BigInt(a) > BigInt(b);
