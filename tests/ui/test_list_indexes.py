"""The runs list's filters that needed an index of their own read it (docs/ui.md, "Scale"): the work pool filter
in the list's newest-first order, and on PostgreSQL "name contains" through a trigram index."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.admin.test_large_tables import admin_client, check_plan, make_runs  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db


def test_the_runs_list_filters_read_their_indexes(admin_client):  # noqa: F811
    make_runs(4)
    check_plan(admin_client, "/ui/flow-runs/?work_pool=gpu", "flow_run_pool_created", True, table="runs_flowrun")
    if connection.vendor == "postgresql":
        check_plan(admin_client, "/ui/flow-runs/?name=otter", "flow_run_name_trigram", False, table="runs_flowrun")
