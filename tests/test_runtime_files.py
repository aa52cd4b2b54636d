"""Files for a running browser (POST /v1/runtimes/{id}/files): the API's answers with a
fake host, and in real Chromium a file uploaded through the API that a Playwright script
and a raw CDP client put into a page's file input, which reads it."""

import asyncio
import base64
from typing import Any

import httpx
import pytest
from bctrl import Bctrl
from django.core.files.uploadedfile import SimpleUploadedFile

from runs.models import Artifact, Runtime
from runtime_host.host import RuntimeHost
from runtimes import services as runtime_services
from tests.conftest import Tenant, fake_host, start_runtime, stop_runtime

RECEIPT = b"%PDF-1.4\n% a receipt\n" + bytes(range(256)) * 40

FORM = """<html><body><label>Attachment <input id="file" type="file"></label>
<pre id="out"></pre><script>
document.getElementById('file').addEventListener('change', async (event) => {
  const file = event.target.files[0];
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  document.getElementById('out').textContent = JSON.stringify(
    {name: file.name, size: file.size, base64: btoa(binary)});
});
</script></body></html>"""


def upload(tenant: Tenant, runtime: Runtime, content: bytes, name: str = "receipt.pdf") -> Any:
    return tenant.client.post(
        f"/v1/runtimes/{runtime.id}/files",
        {"file": SimpleUploadedFile(name, content, content_type="application/pdf")},
        format="multipart",
    )


@pytest.mark.django_db(transaction=True)
def test_files_need_a_running_runtime_of_the_callers_space(
    tenant: Tenant, other_tenant: Tenant, settings: Any
) -> None:
    settings.BCTRL_RUNTIME_UPLOAD_WAIT_S = 0.2
    runtime = runtime_services.runtime_create(space=tenant.space, name="chrome")
    idle = upload(tenant, runtime, RECEIPT)
    assert idle.status_code == 409
    assert idle.json()["error"]["code"] == "runtime.not_running"
    with fake_host():
        assert (
            tenant.client.post(f"/v1/runtimes/{runtime.id}/start", {}, format="json").status_code
            == 200
        )
        assert upload(other_tenant, runtime, RECEIPT).status_code == 404
        assert other_tenant.client.get(f"/v1/runtimes/{runtime.id}/files").status_code == 404
        # The fake host never places files: accepted, kept, said to be not placed yet.
        pending = upload(tenant, runtime, RECEIPT)
        assert pending.status_code == 202
        assert pending.json()["placed"] is False and pending.json()["path"] is None
        listed = tenant.client.get(f"/v1/runtimes/{runtime.id}/files").json()["data"]
        assert [(f["name"], f["size"], f["kind"]) for f in listed] == [
            ("receipt.pdf", len(RECEIPT), "upload")
        ]
        settings.BCTRL_MAX_ARTIFACT_BYTES = 1000
        too_big = upload(tenant, runtime, RECEIPT)
        assert too_big.status_code == 413
        nameless = tenant.client.post(
            f"/v1/runtimes/{runtime.id}/files", {"name": "x"}, format="multipart"
        )
        assert nameless.status_code == 422
        bad_name = upload(tenant, runtime, b"x", name="ok.txt")
        assert bad_name.status_code == 202
        sneaky = tenant.client.post(
            f"/v1/runtimes/{runtime.id}/files",
            {"file": SimpleUploadedFile("a.txt", b"x"), "name": "../../etc/passwd"},
            format="multipart",
        )
        assert sneaky.status_code == 422
    assert Artifact.objects.filter(kind="upload").count() == 2


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_an_uploaded_file_reaches_the_pages_file_input(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant)
    api = Bctrl(api_key=tenant.raw_key, base_url=asgi_server)
    async with httpx.AsyncClient(
        base_url=asgi_server, headers={"Authorization": f"Bearer {tenant.raw_key}"}
    ) as client:
        path = f"/v1/runtimes/{started.runtime.id}/files"
        answers = await asyncio.gather(
            client.post(path, files={"file": ("receipt.pdf", RECEIPT)}),
            client.post(path, files={"file": ("receipt.pdf", b"another receipt")}),
        )
    assert [answer.status_code for answer in answers] == [201, 201]
    first, second = (answer.json() for answer in answers)
    assert first["placed"] and second["placed"], (first, second)
    names = sorted(p.rsplit("/", 1)[-1] for p in (first["path"], second["path"]))
    assert names == ["receipt (2).pdf", "receipt.pdf"]
    mine = first["path"] if first["size"] == len(RECEIPT) else second["path"]

    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        page = await browser.contexts[0].new_page()
        await page.set_content(FORM)
        await page.set_input_files("#file", mine)
        await page.wait_for_function("document.getElementById('out').textContent")
        seen = await page.evaluate("JSON.parse(document.getElementById('out').textContent)")
        assert seen["name"] == mine.rsplit("/", 1)[-1]
        assert base64.b64decode(seen["base64"]) == RECEIPT

        # The page's own file chooser, as Playwright hands it to a script, takes it too.
        chosen = await browser.contexts[0].new_page()
        await chosen.set_content(FORM)
        async with chosen.expect_file_chooser() as opened:
            await chosen.click("#file")
        await (await opened.value).set_files(mine)
        await chosen.wait_for_function("document.getElementById('out').textContent")
        seen = await chosen.evaluate("JSON.parse(document.getElementById('out').textContent)")
        assert base64.b64decode(seen["base64"]) == RECEIPT

        # A raw CDP client does the same with DOM.setFileInputFiles.
        raw = await browser.contexts[0].new_page()
        await raw.set_content(FORM)
        cdp = await browser.contexts[0].new_cdp_session(raw)
        document = await cdp.send("DOM.getDocument", {})
        node = await cdp.send(
            "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": "#file"}
        )
        await cdp.send("DOM.setFileInputFiles", {"files": [mine], "nodeId": node["nodeId"]})
        await raw.wait_for_function("document.getElementById('out').textContent")
        seen = await raw.evaluate("JSON.parse(document.getElementById('out').textContent)")
        assert base64.b64decode(seen["base64"]) == RECEIPT
        await browser.close()
    run = await stop_runtime(asgi_server, tenant, started)
    files = await asyncio.to_thread(api.get, f"/v1/runs/{run.id}/files?type=upload")
    assert sorted(f["size"] for f in files["data"]) == sorted([len(RECEIPT), 15])
