def test_it_lists_no_runs_for_a_new_space(tenant):
    response = tenant.client.get("/v1/runs")
    assert response.status_code == 200
    assert response.json() == {"data": [], "hasMore": False, "nextCursor": None}
