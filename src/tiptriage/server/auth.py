"""Authentication and session policy, and the service that applies it (login, sessions, CSRF, account state).

The rules, with where they come from. Section numbers are those of the FBI CJIS Security Policy; the modernised policy
(v5.9.2 onwards, current v5.9.5 of 2024-07-09, and v6.0) names its requirements by NIST SP 800-53 control identifiers inside
the numbered policy areas (5.4 Auditing and Accountability, 5.5 Access Control, 5.6 Identification and Authentication,
5.10 System and Communications Protection); v5.9 and earlier used numbered subsections, given here where they are the well-known
ones. Values marked "verify" are the ones the author is least sure the text states exactly; check them against the policy an
agency is audited under before relying on them.

==================================  =======================================================================================
Rule (``AuthPolicy`` field)           Source
==================================  =======================================================================================
System-use banner accepted before   CJIS 5.5 AC-8 System Use Notification (v5.9: 5.5.4). The text must be the agency's
login (``banner_text``)             approved notice; ``DEFAULT_BANNER`` is a placeholder that states the usual elements.
Password and TOTP on every account  CJIS 5.6 IA-2(1) and IA-2(2), multi-factor authentication for privileged and
                                    non-privileged accounts (v5.9: 5.6.2.2 Advanced Authentication).
Password at least 12 characters     CJIS v5.9 5.6.2.1.1 Password: the basic standard asks for at least 8 characters, as
(``min_password_length``), at most  does the advanced standard that follows NIST SP 800-63B §5.1.1.2 (where a password is
128, NFKC-normalised                one factor of several). 12 is our choice, above both. 800-63B §5.1.1.2 also asks that
                                    at least 64 characters be allowed and that Unicode be normalised (NFKC or NFKD).
Refuse common and context passwords CJIS 5.6 IA-5(1) password-based authentication (v5.9: 5.6.2.1.1.2 advanced password
(``common_passwords.txt``)          standards); NIST SP 800-63B §5.1.1.2: compare against a list of commonly used,
                                    expected or compromised values, including context-specific words such as the
                                    username. The list is the top 1,000 of SecLists' 10k-most-common (see SOURCES.md).
Passwords hashed with argon2id      NIST SP 800-63B §5.1.1.2 (salted, memory-hard one-way function); RFC 9106 (argon2id,
                                    its "low memory" profile t=3, m=64 MiB, p=4: argon2-cffi's default).
TOTP, 30-second steps, ±1 step,     RFC 6238 (§5.2: allow at most one step of drift either way); NIST SP 800-63B §5.1.4.2
each code accepted once             (a time-based OTP SHALL be accepted only once while valid); CJIS IA-2(8) replay-
                                    resistant authentication.
Lock after 5 failures in 15 min,    CJIS 5.5 AC-7 Unsuccessful Logon Attempts: 5 consecutive invalid attempts within 15
for 30 min (``max_failures``,       minutes; the 30-minute lock is the author's reading of AC-7 b (verify; v5.9 5.5.3 said
``failure_window``, ``lockout``)    10 minutes). An administrator can unlock at once.
Idle lock after 30 minutes          CJIS 5.5 AC-11 Device Lock (v5.9: 5.5.5 Session Lock), 30 minutes of inactivity;
(``idle_timeout``)                  NIST SP 800-63B §4.2.3 (AAL2: re-authenticate after 30 minutes idle).
Re-authenticate every 12 hours      NIST SP 800-63B §4.2.3 (AAL2: at least once per 12 hours whatever the activity);
(``reauthenticate_after``)          CJIS 5.6 IA-11 Re-authentication and 5.5 AC-12 Session Termination (verify the 12-hour
                                    figure against the CJIS text itself).
Disable after 90 idle days          CJIS 5.5 AC-2(3) Disable Accounts: accounts inactive for 90 days (verify the exact
(``disable_inactive_after``)        wording). Checked at every login and by ``disable_inactive_accounts`` (run daily).
Disabling ends the sessions         CJIS 5.5 AC-2 Account Management; AC-12 Session Termination.
Session token 256 bits, stored as   NIST SP 800-63B §7.1 (session secrets of at least 64 bits from an approved random
SHA-256; cookie Secure, HttpOnly,   generator; cookies only over HTTPS, not readable by scripts) and §7.1.1; CJIS 5.10
SameSite=Strict, ``__Host-`` name   SC-23 Session Authenticity.
CSRF token on every state change    CJIS 5.10 SC-23 Session Authenticity; OWASP CSRF Prevention Cheat Sheet (synchronizer
                                    token, kept server-side as a hash and sent back in the ``X-CSRF-Token`` header).
Every login, failure, lock, disable CJIS 5.4 AU-2 Event Logging and AU-3 Content of Audit Records (v5.9: 5.4.1.1 events,
and session end audited             5.4.1.1.1 content: who, what, when, where, outcome).
==================================  =======================================================================================

The public reason for a failed login is always the same ("login failed"), whatever went wrong, so the answer does not tell a
guesser whether a username exists or an account is locked; the audit log records the real reason.

Not done here: the TOTP secret is stored in the clear (it must be encrypted at rest, e.g. with a key outside the database:
CJIS 5.10 SC-28); there is no per-address rate limit beyond the per-account lock; enrolment of the TOTP secret is returned to the
caller (an administrator's tool must show it once, as a QR code, and never log it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import Any, Final

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tiptriage.audit.chain import AuditEvent
from tiptriage.store import Store
from tiptriage.store.audit import GroupAppender
from tiptriage.store.rls import request_agency
from tiptriage.store.users import Role, Session, User, UserRepository, session_and_user

# -- cookies and headers -----------------------------------------------------------------------------------------

SESSION_COOKIE: Final = "__Host-tiptriage_session"  # __Host-: Secure, Path=/, no Domain, so no sibling host can set it
CSRF_COOKIE: Final = "__Host-tiptriage_csrf"  # readable by the page's script, which sends it back as the header
CSRF_HEADER: Final = "X-CSRF-Token"
TOUCH_EVERY: Final = timedelta(seconds=60)
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_BYTES: Final = 32  # 256 bits; secrets.token_urlsafe(32)

DEFAULT_BANNER: Final = (
    "You are about to use a restricted information system of a criminal justice agency. It holds criminal justice "
    "information and is provided for authorized use only. Your use is monitored, recorded and subject to audit. "
    "Unauthorized use, or use beyond your authorization, is prohibited and may lead to criminal and civil penalties. "
    "By logging in you consent to this monitoring and recording. [Placeholder: replace with your agency's approved notice.]"
)


@dataclass(frozen=True)
class AuthPolicy:
    """The numbers of the rules above; the defaults are the ones cited."""

    min_password_length: int = 12
    max_password_length: int = 128
    max_failures: int = 5
    failure_window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=30)
    idle_timeout: timedelta = timedelta(minutes=30)
    reauthenticate_after: timedelta = timedelta(hours=12)
    disable_inactive_after: timedelta = timedelta(days=90)
    totp_drift_steps: int = 1
    totp_issuer: str = "tiptriage"
    banner_text: str = DEFAULT_BANNER
    banner_version: str = "placeholder-1"


# -- actions and roles ------------------------------------------------------------------------------------------


class Action(StrEnum):
    READ_QUEUE = "read_queue"
    READ_REPORT = "read_report"  # the report, its assessment (explain), its subject as the agency sees it
    ANNOTATE_REPORT = "annotate_report"  # notes on a report
    EXPORT_PACKAGE = "export_package"  # a lead package (JSON, HTML, PDF, CASE)
    WORK_CASE = "work_case"  # take a case, move it through the workflow, record its outcome
    ASSIGN_CASE = "assign_case"  # assign a case to anyone in the agency
    READ_DASHBOARD = "read_dashboard"  # the agency's supervisor figures
    READ_AUDIT = "read_audit"  # the agency's audit entries and the chain's verification
    SUBMIT = "submit"  # upload a submission (ESP XML/zip, JSON, CSV); the answer is a receipt, never case data
    ADMIN_HASHSETS = "admin_hashsets"  # list and import known-hash sets (shared by every agency)
    ADMIN_POLICY = "admin_policy"  # read and set the agency's priority policy


_CASE_READERS: Final = frozenset({Action.READ_QUEUE, Action.READ_REPORT})
_CASE_WORKERS: Final = _CASE_READERS | {Action.ANNOTATE_REPORT, Action.EXPORT_PACKAGE, Action.WORK_CASE}

# What each role may do, always only within its own agency (see tiptriage.server.app for the matrix). An analyst triages and
# annotates; an investigator works cases; a supervisor also assigns and watches the figures; an auditor reads, never changes.
PERMISSIONS: Final[dict[Role, frozenset[Action]]] = {
    Role.ANALYST: _CASE_READERS | {Action.ANNOTATE_REPORT, Action.EXPORT_PACKAGE, Action.SUBMIT},
    Role.INVESTIGATOR: _CASE_WORKERS,
    Role.SUPERVISOR: _CASE_WORKERS | {Action.ASSIGN_CASE, Action.READ_DASHBOARD},
    Role.AUDITOR: _CASE_READERS | {Action.READ_AUDIT},
    Role.AGENCY_ADMIN: frozenset({Action.ADMIN_POLICY}),  # manages its agency's accounts and policy; no case data (CJIS 5.5 AC-6)
    Role.SYSTEM_ADMIN: frozenset({Action.ADMIN_HASHSETS, Action.SUBMIT}),  # runs the system; no case data of any agency
}


def allowed(role: Role, action: Action) -> bool:
    return action in PERMISSIONS.get(role, frozenset())


# -- passwords --------------------------------------------------------------------------------------------------

_hasher: Final = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


def hash_password(password: str) -> str:
    return _hasher.hash(normalize_password(password))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, normalize_password(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so that answer takes as long as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))


def normalize_password(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("tiptriage.data").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


_LEET: Final = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_EDGE: Final = re.compile(r"^[\W\d_]+|[\W\d_]+$")


def _shortest_repeat(s: str) -> str:
    """'abcabcabc' → 'abc'; a string that is no repetition comes back whole."""
    for n in range(1, len(s) // 2 + 1):
        if len(s) % n == 0 and s[:n] * (len(s) // n) == s:
            return s[:n]
    return s


def _bases(password: str) -> set[str]:
    """What a guesser would try first from a list word: the word itself, in any case, with digits or symbols around it,
    with common letter-for-digit swaps, or typed more than once ("Password1234!", "p@ssw0rdp@ssw0rd")."""
    low = password.lower()
    core = _EDGE.sub("", low)
    variants = {low, core, low.translate(_LEET), core.translate(_LEET), _EDGE.sub("", low.translate(_LEET))}
    return {b for v in variants for b in (v, _shortest_repeat(v)) if b}


def password_problems(password: str, username: str | None = None, policy: AuthPolicy | None = None) -> list[str]:
    """Why a new password is refused; an empty list means it is acceptable."""
    policy = policy or AuthPolicy()
    pw = normalize_password(password)
    problems: list[str] = []
    if len(pw) < policy.min_password_length:
        problems.append(f"it must be at least {policy.min_password_length} characters long")
    if len(pw) > policy.max_password_length:
        problems.append(f"it must be at most {policy.max_password_length} characters long")
    if len(set(pw)) < 4:
        problems.append("it uses fewer than 4 different characters")
    if _bases(pw) & common_passwords():
        problems.append("it is, or is built from, a commonly used password")
    if username and len(username) >= 3 and username.lower() in pw.lower():
        problems.append("it contains the username")
    return problems


class PasswordPolicyError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("the password is refused: " + "; ".join(problems))
        self.problems = problems


# -- one-time codes -----------------------------------------------------------------------------------------------

TOTP_RE: Final = re.compile(r"\d{6}")


def new_totp_secret() -> str:
    return pyotp.random_base32()  # 32 base32 characters: 160 bits, RFC 4226's recommended key length


def totp_uri(secret: str, username: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def totp_step(secret: str, code: str, now: datetime, drift_steps: int = 1) -> int | None:
    """The time step whose code ``code`` is (within ``drift_steps`` of now), or None. Compared in constant time."""
    if not TOTP_RE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    found: int | None = None
    for delta in range(-drift_steps, drift_steps + 1):
        at = now + timedelta(seconds=delta * totp.interval)
        if hmac.compare_digest(totp.at(at), code) and found is None:
            found = totp.timecode(at)
    return found


# -- tokens -----------------------------------------------------------------------------------------------------


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str | None, expected_hash: str) -> bool:
    return token is not None and hmac.compare_digest(token_hash(token), expected_hash)


# -- account and session state ----------------------------------------------------------------------------------


def is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and now < user.locked_until


def is_inactive(user: User, now: datetime, policy: AuthPolicy) -> bool:
    return now - user.last_activity_at >= policy.disable_inactive_after


def session_expiry(session: Session, now: datetime, policy: AuthPolicy) -> str | None:
    """Why a session may no longer be used ("reauthenticate" or "idle"), or None while it is good."""
    if now - session.created_at >= policy.reauthenticate_after:
        return "reauthenticate"
    if now - session.last_seen_at >= policy.idle_timeout:
        return "idle"
    return None


_USERNAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{1,127}")


def audit_name(text: str) -> str:
    """A name as given by a client, made safe for the audit log (no NUL, valid text, at most 128 characters)."""
    clean = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")[:128]
    return clean or "(empty)"


# -- the service ------------------------------------------------------------------------------------------------


class AuthError(Exception):
    """A refusal, with the HTTP status and a stable code; ``detail`` is safe to show to the client."""

    def __init__(self, status: int, code: str, detail: str, *, clear_session: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.clear_session = clear_session


LOGIN_FAILED: Final = "Login failed: the username, password or one-time code is wrong, or the account is locked or disabled."


@dataclass(frozen=True)
class Principal:
    """Who is making a request: the account and the session."""

    user: User
    session_id: str
    source_address: str | None


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str  # goes only into the cookie
    csrf_token: str
    session: Session


@dataclass(frozen=True)
class Enrollment:
    user: User
    totp_secret: str
    totp_uri: str


def utc_now() -> datetime:
    return datetime.now(UTC)


class Authenticator:
    """Applies ``AuthPolicy`` to the accounts and sessions in a store, auditing every decision. ``clock`` is injectable
    so tests can move time."""

    def __init__(self, store: Store, policy: AuthPolicy | None = None, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.users = UserRepository(store.engine)
        self.policy = policy or AuthPolicy()
        self._clock = clock
        # every read is audited: under load one transaction per entry queued the requests behind the chain head's lock (and
        # held a pooled connection each while they waited); the entries that arrive meanwhile are written together instead
        self._audit = GroupAppender(store.audit)

    def now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def audit(self, user: str, action: str, outcome: str = "ok", *, object_type: str | None = None, object_id: str | None = None,
              agency: str | None = None, source_address: str | None = None, **detail: Any) -> None:
        self._audit.submit(AuditEvent(
            user=audit_name(user), action=action, outcome=outcome, object_type=object_type, object_id=object_id[:256] if object_id else None,
            agency=agency, source_address=(source_address or "")[:64] or None, detail={k: v for k, v in detail.items() if v is not None},
        ))

    # -- accounts --------------------------------------------------------------------------------------------

    def enroll(self, username: str, agency_id: str, role: Role, password: str, *, by: str) -> Enrollment:
        """Create an account with a password (checked against the policy) and a new TOTP secret, returned once."""
        if not _USERNAME_RE.fullmatch(username):
            raise ValueError("a username is 2 to 128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
        if not agency_id or len(agency_id) > 64:
            raise ValueError("agency_id must be 1 to 64 characters")
        problems = password_problems(password, username, self.policy)
        if problems:
            self.audit(by, "change", "failed", object_type="user", object_id=username, agency=agency_id, change="create",
                       reason="password refused")
            raise PasswordPolicyError(problems)
        secret = new_totp_secret()
        user = self.users.create(username, agency_id, Role(role), hash_password(password), secret, self.now())
        self.audit(by, "change", object_type="user", object_id=username, agency=agency_id, change="create", role=user.role.value)
        return Enrollment(user, secret, totp_uri(secret, username, self.policy.totp_issuer))

    def disable_account(self, user: User, *, by: str, reason: str) -> int:
        """Disable an account; its sessions end at once. Returns how many sessions were ended."""
        ended = self.users.disable(user.id, reason, self.now())
        self.audit(by, "change", object_type="user", object_id=user.username, agency=user.agency_id, change="disable",
                   reason=reason, sessions_ended=ended)
        return ended

    def disable_inactive_accounts(self, *, by: str = "tiptriage") -> list[str]:
        """Disable every account idle for ``disable_inactive_after`` (run daily); returns their usernames."""
        cutoff = self.now() - self.policy.disable_inactive_after
        done = []
        for user in self.users.inactive_since(cutoff):
            self.disable_account(user, by=by, reason="inactive")
            done.append(user.username)
        return done

    def change_password(self, principal: Principal, current: str, new: str) -> int:
        """Change one's own password, proving the current one; the account's other sessions end. Returns how many."""
        user = self.users.get(principal.user.id)
        assert user is not None
        if not verify_password(user.password_hash, current):
            self.audit(user.username, "change", "failed", object_type="user", object_id=user.username, agency=user.agency_id,
                       source_address=principal.source_address, change="password", reason="current password wrong")
            raise AuthError(403, "current-password-wrong", "The current password is wrong.")
        problems = password_problems(new, user.username, self.policy)
        if problems:
            self.audit(user.username, "change", "failed", object_type="user", object_id=user.username, agency=user.agency_id,
                       source_address=principal.source_address, change="password", reason="password refused")
            raise PasswordPolicyError(problems)
        self.users.set_password(user.id, hash_password(new), self.now())
        ended = self.users.end_sessions(user.id, keep=principal.session_id)
        self.audit(user.username, "change", object_type="user", object_id=user.username, agency=user.agency_id,
                   source_address=principal.source_address, change="password", sessions_ended=ended)
        return ended

    # -- login and logout ------------------------------------------------------------------------------------

    def _login_failed(self, name: str, reason: str, source: str | None, agency: str | None = None, **detail: Any) -> AuthError:
        self.audit(name, "login_failed", "failed", object_type="user", object_id=audit_name(name), agency=agency,
                   source_address=source, reason=reason, **detail)
        return AuthError(401, "login-failed", LOGIN_FAILED)

    def login(self, username: str, password: str, totp: str, banner_accepted: bool, source: str | None) -> LoginResult:
        now = self.now()
        if banner_accepted is not True:
            self._login_failed(username, "banner not accepted", source)
            raise AuthError(400, "banner-not-accepted", "The system-use notice must be accepted before logging in (banner_accepted: true).")
        user = self.users.by_username(username)
        # the password is always checked, against a dummy hash for an unknown user, so every refusal takes as long
        password_ok = verify_password(user.password_hash if user else _dummy_hash(), password) and user is not None
        if user is None:
            raise self._login_failed(username, "unknown user", source)
        # the account's rows (failures, the TOTP step, the new session) are read and written bound to its agency: under
        # row-level security (tiptriage.store.rls) the application role sees no account of any other
        with request_agency(user.agency_id):
            return self._login_known(user, password, password_ok, totp, source, now)

    def _login_known(self, user: User, password: str, password_ok: bool, totp: str, source: str | None, now: datetime) -> LoginResult:
        username = user.username
        step = totp_step(user.totp_secret, totp, now, self.policy.totp_drift_steps)
        detail = {"password_ok": password_ok, "totp_ok": step is not None}
        if user.disabled:
            raise self._login_failed(username, "account disabled", source, user.agency_id, disabled_reason=user.disabled_reason, **detail)
        if is_inactive(user, now, self.policy):
            self.disable_account(user, by="tiptriage", reason="inactive")
            raise self._login_failed(username, "account inactive: disabled now", source, user.agency_id, **detail)
        if is_locked(user, now):
            raise self._login_failed(username, "account locked", source, user.agency_id, **detail)
        replay = step is not None and user.last_totp_step is not None and step <= user.last_totp_step
        if not password_ok or step is None or replay:
            raise self._count_failure(user, source, "one-time code already used" if replay and password_ok else "wrong credentials", detail)
        rehash = hash_password(password) if needs_rehash(user.password_hash) else None
        if not self.users.record_success(user.id, now, step, rehash):  # another login took this code first
            raise self._count_failure(user, source, "one-time code already used", detail)
        token, csrf = new_token(), new_token()
        session = self.users.create_session(token_hash(token), user.id, now, token_hash(csrf), source)
        fresh = self.users.get(user.id)
        assert fresh is not None
        self.audit(user.username, "login", object_type="user", object_id=user.username, agency=user.agency_id, source_address=source,
                   session=session.id[:16], role=user.role.value)
        return LoginResult(fresh, token, csrf, session)

    def _count_failure(self, user: User, source: str | None, reason: str, detail: dict[str, Any]) -> AuthError:
        outcome = self.users.record_failure(user.id, self.now(), self.policy.failure_window, self.policy.max_failures, self.policy.lockout)
        err = self._login_failed(user.username, reason, source, user.agency_id, failures=outcome.failures, **detail)
        if outcome.locked_until is not None:
            self.audit("tiptriage", "change", object_type="user", object_id=user.username, agency=user.agency_id, source_address=source,
                       change="lock", failures=outcome.failures, until=outcome.locked_until.isoformat())
        return err

    def logout(self, principal: Principal) -> None:
        self.users.end_session(principal.session_id)
        self.audit(principal.user.username, "logout", object_type="user", object_id=principal.user.username,
                   agency=principal.user.agency_id, source_address=principal.source_address, reason="user")

    # -- every request ---------------------------------------------------------------------------------------

    def authenticate(self, token: str | None, *, method: str, csrf_token: str | None, source: str | None, path: str) -> Principal:
        """The principal behind a session cookie, or an ``AuthError``: 401 for no or an ended session, 403 for a state-changing
        request without the session's CSRF token. A good request moves the idle clock."""
        if not token:
            raise AuthError(401, "not-authenticated", "Log in first.")
        sid = token_hash(token)
        found = session_and_user(self.users, sid)
        if found is None:
            raise AuthError(401, "not-authenticated", "The session has ended or is unknown; log in again.", clear_session=True)
        session, user = found
        # as in login: ending or touching the session writes the agency's rows; the caller binds its own context afterwards
        with request_agency(user.agency_id if user is not None else None):
            return self._check_session(session, user, sid, method=method, csrf_token=csrf_token, source=source, path=path)

    def accept(self, found: tuple[Session, User | None] | None, *, method: str, source: str | None) -> Principal | None:
        """The principal of a session already read (``SessionRead.session``) when the request needs nothing done about it: a
        safe method, the account enabled, the session neither idle nor too old, its idle clock moved less than ``TOUCH_EVERY``
        ago. None otherwise, and the caller then goes through ``authenticate``, which decides as ever and does what each case
        needs (ends the session, audits it, moves the idle clock, checks the CSRF token). Where both give a principal, it is
        the same one."""
        if found is None or method.upper() not in SAFE_METHODS:
            return None
        session, user = found
        now = self.now()
        if user is None or user.disabled or session_expiry(session, now, self.policy) is not None or now - session.last_seen_at >= TOUCH_EVERY:
            return None
        return Principal(user, session.id, source)

    def _check_session(self, session: Session, user: User | None, sid: str, *, method: str, csrf_token: str | None, source: str | None,
                       path: str) -> Principal:
        now = self.now()
        if user is None or user.disabled:
            self.users.end_session(sid)
            raise AuthError(401, "not-authenticated", "The session has ended; log in again.", clear_session=True)
        why = session_expiry(session, now, self.policy)
        if why is not None:
            self.users.end_session(sid)
            self.audit(user.username, "logout", object_type="user", object_id=user.username, agency=user.agency_id, source_address=source,
                       reason="idle timeout" if why == "idle" else "re-authentication required")
            message = "The session was idle too long" if why == "idle" else "The session is too old"
            raise AuthError(401, "session-expired", f"{message}; log in again.", clear_session=True)
        if method.upper() not in SAFE_METHODS and not token_matches(csrf_token, session.csrf_token_hash):
            self.audit(user.username, "change", "denied", object_type="request", object_id=f"{method.upper()} {path}",
                       agency=user.agency_id, source_address=source, reason="missing or wrong CSRF token")
            raise AuthError(403, "csrf-token-invalid", f"A state-changing request must carry the session's CSRF token in {CSRF_HEADER}.")
        if now - session.last_seen_at >= TOUCH_EVERY:
            # the idle clock moves at most once a minute: a write per request only to say "still here" serialised every read
            # behind a commit; the lock comes at most TOUCH_EVERY later than 30 minutes after the last activity
            self.users.touch(sid, now)
        return Principal(user, sid, source)
