"""The gateway's gRPC adapters against a real gRPC server on port 0 that answers with scripted
statuses: each port method reaches the RPC it is named for (no method names as strings), and a
failed call is read once, by the shared ``atelier_common.grpc_client`` helper."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from atelier_common.grpc_client import ErrorCategory, RemoteCallError

from atelier_gateway.adapters.grpc_billing import GrpcBillingAccounts, GrpcBillingGateway
from atelier_gateway.adapters.grpc_tasks import GrpcTasksGateway
from atelier_gateway.application.billing_views import NewOrder
from atelier_gateway.application.calls import Caller, Notification, PageRequest
from atelier_gateway.application.task_views import NewTask, NewUpload, TaskFilter
from atelier_ports import problems
from tests.common.scripted_grpc import ScriptedServer, scripted_server

BILLING = "/atelier.billing.v1.BillingService/"
TASKS = "/atelier.tasks.v1.TaskService/"
SETUP = BILLING + "SetUpAccount"
CONTACT = BILLING + "UpdateAccountContact"
TRANSIENT = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
CALLER = Caller("usr_1", request_id="req_1")
PAGE = PageRequest(page_size=10)
HOOK = Notification(provider="local", headers=[("x-signature", "s")], body=b"{}")

BillingCall = Callable[[GrpcBillingGateway], Awaitable[object]]
TasksCall = Callable[[GrpcTasksGateway], Awaitable[object]]

BILLING_CALLS: dict[str, BillingCall] = {
    "GetBalance": lambda g: g.get_balance(CALLER),
    "ListLedgerEntries": lambda g: g.list_ledger(CALLER, PAGE),
    "GetCatalog": lambda g: g.get_catalog(CALLER),
    "CreateOrder": lambda g: g.create_order(CALLER, NewOrder("pack_100", "local"), "idem_1"),
    "ListOrders": lambda g: g.list_orders(CALLER, PAGE),
    "GetOrder": lambda g: g.get_order(CALLER, "ord_1"),
    "RefreshOrder": lambda g: g.refresh_order(CALLER, "ord_1"),
    "RefundOrder": lambda g: g.refund_order(CALLER, "ord_1", "duplicate purchase"),
    "CompleteSandboxCheckout": lambda g: g.complete_sandbox_checkout(CALLER, "ord_1", "paid"),
    "HandlePaymentNotification": lambda g: g.handle_payment_notification(CALLER, HOOK),
}
TASKS_CALLS: dict[str, TasksCall] = {
    "CreateUpload": lambda g: g.create_upload(CALLER, NewUpload("image/png", 10, None)),
    "CreateTask": lambda g: g.create_task(
        CALLER, NewTask("text_to_image", {"prompt": "a chair", "n": 2}), None
    ),
    "ListTasks": lambda g: g.list_tasks(CALLER, PAGE, TaskFilter("pending", "basic_clean")),
    "ListAllTasks": lambda g: g.list_all_tasks(CALLER, PAGE, TaskFilter()),
    "GetTask": lambda g: g.get_task(CALLER, "tsk_1"),
    "CancelTask": lambda g: g.cancel_task(CALLER, "tsk_1"),
    "ListImages": lambda g: g.list_images(CALLER, PAGE, "model_pose12"),
    "GetUserStats": lambda g: g.get_user_stats(CALLER),
    "HandleProviderNotification": lambda g: g.handle_provider_notification(CALLER, HOOK),
    "WatchTaskChanges": lambda g: anext(g.task_changes(5.0)),
}


def _refused(server: ScriptedServer, path: str, call: Awaitable[object]) -> RemoteCallError:
    async def run() -> RemoteCallError:
        with pytest.raises(RemoteCallError) as err:
            await call
        return err.value

    error = asyncio.run(run())
    assert server.calls[path] == 1, f"{path} was not the RPC called"
    assert sum(server.calls.values()) == 1
    return error


@pytest.mark.parametrize("rpc", sorted(BILLING_CALLS))
def test_each_billing_gateway_method_calls_its_rpc(rpc: str) -> None:
    paths = tuple(BILLING + name for name in BILLING_CALLS)
    with scripted_server(*paths) as server:
        for path in paths:
            server.answer(path, "NOT_FOUND", reason="ORDER_NOT_FOUND")

        async def call() -> object:
            gateway = GrpcBillingGateway(server.address, "token", timeout=5.0)
            try:
                return await BILLING_CALLS[rpc](gateway)
            finally:
                await gateway.close()

        error = _refused(server, BILLING + rpc, call())
    assert (error.service, error.status, error.reason) == (
        "billing",
        "NOT_FOUND",
        "ORDER_NOT_FOUND",
    )


@pytest.mark.parametrize("rpc", sorted(TASKS_CALLS))
def test_each_tasks_gateway_method_calls_its_rpc(rpc: str) -> None:
    paths = tuple(TASKS + name for name in TASKS_CALLS)
    with scripted_server(*paths) as server:
        for path in paths:
            server.answer(path, "NOT_FOUND", reason="TASK_NOT_FOUND")

        async def call() -> object:
            gateway = GrpcTasksGateway(server.address, "token", timeout=5.0)
            try:
                return await TASKS_CALLS[rpc](gateway)
            finally:
                await gateway.close()

        error = _refused(server, TASKS + rpc, call())
    assert (error.service, error.status, error.reason) == ("tasks", "NOT_FOUND", "TASK_NOT_FOUND")


def test_gateway_remote_errors_keep_status_reason_and_metadata() -> None:
    path = BILLING + "CreateOrder"
    with scripted_server(path) as server:
        server.answer(path, "ALREADY_EXISTS", reason="REQUEST_ID_CONFLICT", field="request_id")

        async def call() -> object:
            gateway = GrpcBillingGateway(server.address, "token", timeout=5.0)
            try:
                return await gateway.create_order(CALLER, NewOrder("pack_100", "local"), "idem_1")
            finally:
                await gateway.close()

        error = _refused(server, path, call())
    assert (error.status, error.reason, error.metadata) == (
        "ALREADY_EXISTS",
        "REQUEST_ID_CONFLICT",
        {"field": "request_id"},
    )
    assert error.category is ErrorCategory.CONFLICT


def test_nothing_listening_is_unhealthy_not_an_error() -> None:
    async def run() -> tuple[bool, bool]:
        billing = GrpcBillingGateway("127.0.0.1:1", "token", timeout=1.0)
        tasks = GrpcTasksGateway("127.0.0.1:1", "token", timeout=1.0)
        try:
            return await billing.healthy(), await tasks.healthy()
        finally:
            await billing.close()
            await tasks.close()

    assert asyncio.run(run()) == (False, False)


@pytest.mark.parametrize(
    ("status", "raised", "attempts"),
    [
        ("UNAVAILABLE", problems.Unavailable, 2),
        ("DEADLINE_EXCEEDED", problems.Unavailable, 2),
        ("INVALID_ARGUMENT", problems.InvalidArgument, 1),
        ("ALREADY_EXISTS", problems.AlreadyExists, 1),
        ("FAILED_PRECONDITION", problems.FailedPrecondition, 1),
        ("UNAUTHENTICATED", RemoteCallError, 1),
        ("INTERNAL", RemoteCallError, 1),
    ],
)
def test_gateway_billing_accounts_tell_refusals_from_unavailability(
    status: str, raised: type[Exception], attempts: int
) -> None:
    with scripted_server(SETUP, CONTACT) as server:
        accounts = GrpcBillingAccounts(server.address, "token", timeout=5.0)
        try:
            server.answer(SETUP, status, reason=f"R_{status}", field="email")
            with pytest.raises(raised) as err:
                accounts.set_up_account("u1", "a@example.com", "A")
            assert type(err.value) is raised or issubclass(type(err.value), raised)
            if isinstance(err.value, problems.DomainError) and status not in TRANSIENT:
                assert err.value.reason == f"R_{status}"
            assert server.calls[SETUP] == attempts
            server.answer(CONTACT, status)
            with pytest.raises(raised):
                accounts.update_contact("u1", "a@example.com", "A")
        finally:
            accounts.close()


def test_gateway_billing_accounts_ok_and_missing_account() -> None:
    with scripted_server(SETUP, CONTACT) as server:
        accounts = GrpcBillingAccounts(server.address, "token")
        try:
            assert accounts.set_up_account("u1", None, None) is False  # empty reply
            server.answer(CONTACT, "NOT_FOUND", reason="ACCOUNT_NOT_FOUND")
            accounts.update_contact("u1", "a@example.com", None)  # no account yet: no error
            assert server.calls[CONTACT] == 1
        finally:
            accounts.close()
