"""hold, capture and release in one statement (PostgreSQL functions)

Revision ID: 0003_hold
Revises: 0002
Create Date: 2026-12-01 16:40:00

On PostgreSQL a hold, and a capture or release, is one call of a PL/pgSQL function: one
statement, one round trip for the work (inside the unit of work's BEGIN … COMMIT), its plans
cached per session. A repeat of a hold, or of a settled capture/release, is answered from the
same call without the lock. Otherwise the function takes the account's row lock, so one user's
credit changes stay one transaction at a time; in READ COMMITTED every statement of a volatile
function reads a fresh snapshot, so what the function reads after the lock is what the previous
holder of the lock committed. Nothing is written before the checks pass, so a refusal changes
nothing; a write that fails anyway raises, which undoes the whole call.

SQLite has no stored functions: the repository runs the same steps as prepared statements under
SQLite's one-writer lock (BEGIN IMMEDIATE). The tables do not change.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_hold"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The spending order (F5): soonest-expiring first, grants that never expire last; ties by
# creation time, then id in byte order (as the domain's ``spending_order`` sorts them).
_SPENDING_ORDER = 'g.expires_at ASC NULLS LAST, g.created_at, g.id COLLATE "C"'

# A hold's columns as the functions return them (RETURN QUERY wants the declared types exactly).
_HOLD = "h.id::text, h.amount, h.status::text, h.reference::text, h.created_at, h.settled_at"
_NOTHING = "NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::timestamptz, NULL::timestamptz"

# outcome: 'done' (this call placed the hold), 'found' (a hold with this request_id exists:
# returned as it is), 'no_account', 'not_enough' (spendable credits do not cover the amount).
PLACE_HOLD = f"""
CREATE FUNCTION billing_place_hold(
    p_user_id text, p_request_id text, p_amount bigint, p_reference text, p_hold_id text,
    p_now timestamptz
) RETURNS TABLE (
    r_outcome text, r_id text, r_amount bigint, r_status text, r_reference text,
    r_created_at timestamptz, r_settled_at timestamptz, r_grant_ids text[], r_parts bigint[]
) LANGUAGE plpgsql AS $$
DECLARE
    h holds%ROWTYPE;
    v_ids text[];
    v_parts bigint[];
    v_total bigint;
    v_available bigint;
    v_taken integer;
BEGIN
    -- A repeat is answered without the lock (it waits for nobody and writes nothing); a first
    -- call takes the lock, then looks again: a racing twin may have won.
    SELECT * INTO h FROM holds WHERE user_id = p_user_id AND request_id = p_request_id;
    IF NOT FOUND THEN
        PERFORM 1 FROM accounts WHERE user_id = p_user_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'no_account'::text, {_NOTHING}, NULL::text[], NULL::bigint[];
            RETURN;
        END IF;
        SELECT * INTO h FROM holds WHERE user_id = p_user_id AND request_id = p_request_id;
    END IF;
    IF FOUND THEN
        RETURN QUERY SELECT 'found'::text, {_HOLD},
            array_agg(a.grant_id::text ORDER BY {_SPENDING_ORDER}),
            array_agg(a.amount ORDER BY {_SPENDING_ORDER})
            FROM hold_allocations a JOIN grants g ON g.id = a.grant_id WHERE a.hold_id = h.id;
        RETURN;
    END IF;
    -- Expired grants are never spent, whether or not the expiry job has swept them yet.
    SELECT array_agg(s.id ORDER BY s.n), array_agg(s.part ORDER BY s.n), coalesce(sum(s.part), 0)
      INTO v_ids, v_parts, v_total
      FROM (
        SELECT c.id, c.n, least(c.remaining, p_amount - (c.upto - c.remaining)) AS part
          FROM (
            SELECT g.id, g.remaining,
                   sum(g.remaining) OVER w AS upto, row_number() OVER w AS n
              FROM grants g
             WHERE g.user_id = p_user_id AND g.remaining > 0
               AND (g.expires_at IS NULL OR g.expires_at > p_now)
            WINDOW w AS (ORDER BY {_SPENDING_ORDER} ROWS UNBOUNDED PRECEDING)
          ) c
         WHERE c.upto - c.remaining < p_amount
      ) s;
    IF v_total < p_amount THEN
        RETURN QUERY SELECT 'not_enough'::text, {_NOTHING}, NULL::text[], NULL::bigint[];
        RETURN;
    END IF;
    UPDATE accounts SET available = available - p_amount, held = held + p_amount
     WHERE user_id = p_user_id AND available >= p_amount
    RETURNING available INTO v_available;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_enough'::text, {_NOTHING}, NULL::text[], NULL::bigint[];
        RETURN;
    END IF;
    UPDATE grants g SET remaining = g.remaining - t.part
      FROM unnest(v_ids, v_parts) AS t(id, part)
     WHERE g.id = t.id AND g.remaining >= t.part;
    GET DIAGNOSTICS v_taken = ROW_COUNT;
    IF v_taken <> cardinality(v_ids) THEN
        RAISE EXCEPTION 'billing: credits changed concurrently';
    END IF;
    INSERT INTO holds (id, user_id, request_id, amount, status, reference, created_at)
    VALUES (p_hold_id, p_user_id, p_request_id, p_amount, 'held', p_reference, p_now);
    INSERT INTO hold_allocations (hold_id, grant_id, amount)
    SELECT p_hold_id, t.id, t.part FROM unnest(v_ids, v_parts) AS t(id, part);
    INSERT INTO ledger_entries
        (user_id, kind, amount, held_change, balance_after, reference, reason, hold_id, created_at)
    VALUES (p_user_id, 'hold', -p_amount, p_amount, v_available, p_reference, '', p_hold_id, p_now);
    RETURN QUERY SELECT 'done'::text, p_hold_id, p_amount, 'held'::text, p_reference, p_now,
        NULL::timestamptz, v_ids, v_parts;
END
$$
"""

# outcome: 'done' (this call captured or released the hold), 'found' (the hold was settled
# before: returned as it is), 'not_found'. A release gives each allocation back to its grant
# unless the grant has expired (swept or not); those shares come back as one GRACE grant.
SETTLE_HOLD = f"""
CREATE FUNCTION billing_settle_hold(
    p_user_id text, p_request_id text, p_target text, p_now timestamptz,
    p_grace_id text, p_grace_expires_at timestamptz
) RETURNS TABLE (
    r_outcome text, r_id text, r_amount bigint, r_status text, r_reference text,
    r_created_at timestamptz, r_settled_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    h holds%ROWTYPE;
    v_release boolean := p_target = 'released';
    v_available bigint;
    v_regrant bigint;
BEGIN
    -- A settled hold stays settled: a repeat is answered without the lock. A held one is read
    -- again under the lock (a racing capture or release may have settled it meanwhile).
    SELECT * INTO h FROM holds WHERE user_id = p_user_id AND request_id = p_request_id;
    IF FOUND AND h.status = 'held' THEN
        PERFORM 1 FROM accounts WHERE user_id = p_user_id FOR UPDATE;
        SELECT * INTO h FROM holds WHERE user_id = p_user_id AND request_id = p_request_id;
    END IF;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, {_NOTHING};
        RETURN;
    END IF;
    IF h.status <> 'held' THEN
        RETURN QUERY SELECT 'found'::text, {_HOLD};
        RETURN;
    END IF;
    UPDATE holds SET status = p_target, settled_at = p_now WHERE id = h.id AND status = 'held';
    UPDATE accounts
       SET held = held - h.amount,
           available = available + CASE WHEN v_release THEN h.amount ELSE 0 END
     WHERE user_id = p_user_id AND held >= h.amount
    RETURNING available INTO v_available;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'billing: the held balance of % is below a hold being settled', p_user_id;
    END IF;
    IF v_release THEN
        WITH back AS (
            UPDATE grants g SET remaining = g.remaining + a.amount
              FROM hold_allocations a
             WHERE a.hold_id = h.id AND g.id = a.grant_id AND g.expired_at IS NULL
               AND (g.expires_at IS NULL OR g.expires_at > p_now)
               AND g.remaining + a.amount <= g.amount
            RETURNING g.id
        )
        SELECT coalesce(sum(a.amount), 0) INTO v_regrant
          FROM hold_allocations a
         WHERE a.hold_id = h.id AND a.grant_id NOT IN (SELECT id FROM back);
        IF v_regrant > 0 THEN
            INSERT INTO grants (id, user_id, source, amount, remaining, expires_at, created_at,
                                reference, idempotency_key)
            VALUES (p_grace_id, p_user_id, 'grace', v_regrant, v_regrant, p_grace_expires_at,
                    p_now,
                    left('returned from ' || coalesce(nullif(h.reference, ''), h.request_id), 200),
                    'grace:' || h.id);
        END IF;
    END IF;
    INSERT INTO ledger_entries
        (user_id, kind, amount, held_change, balance_after, reference, reason, hold_id, created_at)
    VALUES (p_user_id, CASE WHEN v_release THEN 'release' ELSE 'capture' END,
            CASE WHEN v_release THEN h.amount ELSE 0 END, -h.amount, v_available, h.reference, '',
            h.id, p_now);
    RETURN QUERY SELECT 'done'::text, h.id::text, h.amount, p_target, h.reference::text,
        h.created_at, p_now;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(PLACE_HOLD)
    op.execute(SETTLE_HOLD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(
        "DROP FUNCTION IF EXISTS billing_place_hold(text, text, bigint, text, text, timestamptz)"
    )
    op.execute(
        "DROP FUNCTION IF EXISTS "
        "billing_settle_hold(text, text, text, timestamptz, text, timestamptz)"
    )
