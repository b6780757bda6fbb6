// The public /v1 API, and the session: the access token lives in this module's memory only; the
// refresh token is kept by the browser in the gateway's HttpOnly SameSite=Strict cookie (asked for
// with COOKIE_REQUEST below), so a reload or a return from a checkout page restores the session.
import { language } from "./i18n.js";

// How the workbench asks the gateway to keep the refresh token in the cookie (see the OpenAPI
// document of /v1/auth/*): one header on sign-up, log-in, SMS verify, refresh and log-out.
export const COOKIE_REQUEST = { name: "X-Refresh-Token-Cookie", value: "1" };

let accessToken = null;
let accessExpiresAt = 0;
let refreshToken = null; // only when the gateway answered it in the body (no cookie mode)
let user = null;
let refreshing = null;
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code || (status === 0 ? "offline" : "error");
    this.problem = problem || {};
  }
}

export function currentUser() {
  return user;
}

export function onSessionChange(listener) {
  listeners.add(listener);
}

// A hint, not a secret: "the gateway keeps a refresh cookie for this browser", so a visit without
// one does not ask for a refresh that can only fail. The cookie that matters is the HttpOnly one.
const HINT = "atelier_session";

export function mayHaveSession() {
  return document.cookie.split("; ").includes(`${HINT}=1`);
}

function setHint(on) {
  document.cookie = on ? `${HINT}=1; path=/; SameSite=Strict` : `${HINT}=; path=/; SameSite=Strict; max-age=0`;
}

function setSession(body) {
  // Cookie mode shows in the answer: the refresh token is not in the body ("instead of in the
  // body"). Only then can a reload find a session to restore.
  setHint(Boolean(body) && !body.refresh_token);
  accessToken = body ? body.access_token : null;
  accessExpiresAt = body ? Date.now() + (body.expires_in || 0) * 1000 : 0;
  refreshToken = body && body.refresh_token ? body.refresh_token : null;
  const before = user?.id;
  user = body ? body.user : null;
  if (before !== user?.id) for (const listener of listeners) listener(user);
}

export function updateUser(profile) {
  if (user) user = { ...user, name: profile.name, role: profile.role };
}

async function raw(method, path, { body, headers = {}, auth = true, signal } = {}) {
  const init = { method, headers: { "Accept-Language": language(), ...headers }, credentials: "same-origin", signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (auth && accessToken) init.headers.Authorization = `Bearer ${accessToken}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, null);
  }
  return response;
}

async function parse(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    const problem = type.includes("json") ? await response.json().catch(() => null) : null;
    throw new ApiError(response.status, problem);
  }
  return type.includes("json") ? response.json() : response;
}

function sessionHeaders() {
  return { [COOKIE_REQUEST.name]: COOKIE_REQUEST.value };
}

// One refresh at a time; false when there is no session to restore.
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const body = refreshToken ? { refresh_token: refreshToken } : {};
      const response = await raw("POST", "/v1/auth/refresh", { body, headers: sessionHeaders(), auth: false });
      if (!response.ok) {
        setSession(null);
        return false;
      }
      setSession(await response.json());
      return true;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

// An authenticated call; a 401 refreshes the session once and repeats the call.
export async function api(method, path, options = {}) {
  if (accessToken && Date.now() > accessExpiresAt - 10_000) await refresh().catch(() => false);
  let response = await raw(method, path, options);
  if (response.status === 401 && options.auth !== false && (await refresh().catch(() => false))) {
    response = await raw(method, path, options);
  }
  if (response.status === 401 && options.auth !== false) setSession(null);
  return parse(response);
}

export const get = (path, options) => api("GET", path, options);
export const post = (path, body, options = {}) => api("POST", path, { ...options, body });
export const patch = (path, body, options = {}) => api("PATCH", path, { ...options, body });

async function startSession(path, body) {
  const response = await raw("POST", path, { body, headers: sessionHeaders(), auth: false });
  const session = await parse(response);
  setSession(session);
  return session.user;
}

export const signUp = (email, password, name) => startSession("/v1/auth/signup", { email, password, name });
export const logIn = (email, password) => startSession("/v1/auth/login", { email, password });
export const verifySms = (phone, code) => startSession("/v1/auth/sms/verify", { phone, code });
export const sendSms = (phone) => api("POST", "/v1/auth/sms/send", { body: { phone }, auth: false });

export async function logOut() {
  const body = refreshToken ? { refresh_token: refreshToken } : {};
  try {
    await raw("POST", "/v1/auth/logout", { body, headers: sessionHeaders(), auth: false });
  } finally {
    setSession(null);
  }
}

// The bearer token for the few requests made outside fetch-JSON (event stream, zip download).
export function authHeader() {
  return accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
}

export async function ensureFreshToken() {
  if (!accessToken || Date.now() > accessExpiresAt - 10_000) await refresh();
}

// Download an authenticated resource (the archive) as a file without putting the token in a URL.
export async function download(path, filename) {
  await ensureFreshToken();
  const response = await raw("GET", path);
  if (!response.ok) await parse(response);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
