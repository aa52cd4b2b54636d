"""Runtimes whose host vanished (SIGKILL, lost machine) are failed by a beat task."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from runs.models import Runtime
from runs.selectors import live_hosts
from runtimes.services import RUNTIME_BUSY, runtime_finished

logger = logging.getLogger(__name__)

HOST_GONE_REASON = "runtime host stopped responding"


def runtimes_sweep_vanished() -> int:
    stale = settings.BCTRL_RUNTIME_HEARTBEAT_S * settings.BCTRL_RUNTIME_STALE_HEARTBEATS
    cutoff = timezone.now() - timedelta(seconds=stale)
    swept = 0
    # Taken by a host that stopped heartbeating, or placed on a host that died before it
    # took the start.
    gone = Q(heartbeat_at__lt=cutoff) | (
        Q(heartbeat_at=None, updated_at__lt=cutoff) & ~Q(host_id__in=live_hosts().values("id"))
    )
    candidates = Runtime.objects.filter(gone, status__in=RUNTIME_BUSY).exclude(host_id="")
    for runtime in candidates:
        with transaction.atomic():
            # Locked and re-checked: a heartbeat may have landed since the query.
            locked = (
                Runtime.objects.select_for_update()
                .filter(gone, pk=runtime.pk, status__in=RUNTIME_BUSY)
                .first()
            )
            if locked is None:
                continue
            logger.warning("Runtime %s: host %s stopped responding", locked.id, locked.host_id)
            runtime_finished(runtime=locked, state="failed", reason=HOST_GONE_REASON)
            swept += 1
    return swept
