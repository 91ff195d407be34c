"""Login chains of the simulated smart cloud over real HTTP: EU, INTL, the token ladder, the WAF."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from exporter.config import SimulatorConfig
from exporter.simulator.smart import SmartCloudConfig
from exporter.simulator.smart.identity import Lifetimes
from tests.test_sim_support import (
    EU_KEY,
    GIGYA_KEY,
    INTL_KEY,
    WEBVIEW_UA,
    SignedClient,
    logged_in,
    running_sim,
)

DAY = 86400.0


async def test_eu_chain_redirects_stay_on_the_simulator() -> None:
    async with running_sim() as (handle, _clock, session):
        urls = handle.urls["smart"]
        loopback = set(urls.values())
        url = urls["awsapi"] + "/login-app/api/v1/authorize?uiLocales=de-DE"
        hops = []
        for _ in range(3):
            async with session.get(
                url, headers={"user-agent": WEBVIEW_UA}, allow_redirects=False
            ) as r:
                assert r.status == 302
                url = r.headers["Location"]
            hops.append(url)
            if "context=" in url:
                break
        assert len(hops) == 2  # context arrives on hop 2, as in 2026
        for hop in hops:
            parsed = urlparse(hop)
            assert f"{parsed.scheme}://{parsed.netloc}" in loopback
        ctx = parse_qs(urlparse(hops[-1]).query)["context"][0]
        assert ctx.startswith("eu1_tk1.")

        client = SignedClient(session, urls, clock=handle.clock)
        login = handle.logins["smart_eu"]
        oauth = await client.eu_oauth(login["username"], login["password"])
        assert oauth.startswith("st2.s.")
        reply = await client.session_post()
        body = reply.json()
        assert body["code"] == 1000 and isinstance(body["code"], int)  # integer on session/secure
        data = body["data"]
        assert data["expiresIn"] == 4579200 and data["userId"] and data["clientId"]
        assert data["accessToken"].count(".") == 2  # a JWT
        assert (await client.vehicles()).code == "1000"


async def test_eu_login_refusals() -> None:
    async with running_sim() as (handle, _clock, session):
        urls = handle.urls["smart"]
        app_ua = {"user-agent": "Hello smart/1.4.0 (iPhone; iOS 17.1; Scale/3.00)"}
        async with session.get(
            urls["awsapi"] + "/login-app/api/v1/authorize", headers=app_ua, allow_redirects=False
        ) as r:
            assert r.status == 403  # the gateway only talks to the webview
        login = handle.logins["smart_eu"]
        form = {"loginID": login["username"], "password": "wrong", "APIKey": GIGYA_KEY}
        origin = {"origin": "https://app.id.smart.com"}
        async with session.post(urls["auth"] + "/accounts.login", data=form) as r:
            no_origin = await r.json(content_type=None)
        assert r.status == 200 and no_origin["errorCode"] == 400120  # not from the app's page
        async with session.post(urls["auth"] + "/accounts.login", data=form, headers=origin) as r:
            no_cookie = await r.json(content_type=None)
        assert r.status == 200 and no_cookie["errorCode"] == 400006  # no bootstrap cookie
        async with session.get(
            urls["socialize"] + "/socialize.getIDs", params={"APIKey": GIGYA_KEY}
        ) as r:
            ids = await r.json(content_type=None)
        cookie = {"cookie": f"gmid={ids['gmid']}; ucid={ids['ucid']}", **origin}
        async with session.post(urls["auth"] + "/accounts.login", data=form, headers=cookie) as r:
            bad = await r.json(content_type=None)
        assert r.status == 200 and bad["errorCode"] == 403042 and "sessionInfo" not in bad
        async with session.get(
            urls["socialize"] + "/socialize.getIDs", params={"APIKey": "nope"}
        ) as r:
            assert (await r.json(content_type=None))["errorCode"] != 0
        # a context is single-use and must exist
        cont = f"{urls['auth']}/oidc/op/v1.0/{GIGYA_KEY}/authorize/continue?context=eu1_tk1.x.1"
        async with session.get(cont, allow_redirects=False) as r:
            assert r.status == 302 and "mode=error" in r.headers["Location"]


async def test_intl_login_uses_its_own_key() -> None:
    async with running_sim() as (handle, _clock, session):
        client = await logged_in(handle, session, "smart_intl")
        assert client.key == INTL_KEY
        listing = await client.vehicles()
        assert listing.code == "1000"
        items = listing.json()["data"]["list"]
        assert [i["vin"] for i in items] == handle.info()["vins"]["smart_intl"]
        assert items[0]["seriesCodeVs"].endswith("_IL")
        login = handle.logins["smart_intl"]
        sg = handle.urls["smart"]["sg_app_api"] + "/iam/service/api/v1/login"
        creds = {"email": login["username"], "password": login["password"]}
        async with session.post(sg, json=creds, headers={"X-Ca-Key": "123"}) as r:
            assert (await r.json())["code"] == "401"
        async with session.post(sg, json=creds, headers={"Xs-Client-Id": "2232193363e44527"}) as r:
            ok = await r.json()
        assert ok["code"] == "200" and ok["result"]["userId"] == client.user_id
        gateway = {
            "X-Ca-Key": "204587190",
            "X-Ca-Nonce": "n-1",
            "X-Ca-Timestamp": "1767225600000",
            "X-App-Id": "SmartAPPGlobal",
        }
        async with session.post(sg, json={**creds, "password": "x"}, headers=gateway) as r:
            assert (await r.json())["code"] not in {"200", 200}
        for name in ("X-Ca-Nonce", "X-Ca-Timestamp", "X-App-Id"):  # the gateway headers are checked
            partial = {k: v for k, v in gateway.items() if k != name}
            async with session.post(sg, json=creds, headers=partial) as r:
                refused = await r.json()
            assert refused["code"] == "400" and name in refused["message"]
        # the same request signed with the EU key is refused
        path = "/device-platform/user/vehicle/secure"
        query = f"needSharedCar=1&userId={client.user_id}"
        intl_ids = {"x-app-id": "SMARTAPP-ISRAEL", "x-operator-code": "SMART-ISRAEL"}
        signed_eu = await client.call("GET", "api_v1", path, query, key=EU_KEY, headers=intl_ids)
        assert signed_eu.code == "1445"


async def test_ladder_repost_then_put_refresh_then_full_login() -> None:
    lifetimes = Lifetimes(api_access=3600.0, oauth_access=2 * DAY, api_refresh=10 * DAY)
    options = {"smart": SmartCloudConfig(lifetimes=lifetimes)}
    async with running_sim(SimulatorConfig(seed=2), options=options) as (handle, clock, session):
        client = await logged_in(handle, session)
        assert (await client.vehicles()).code == "1000"

        # layer 1: the API token dies early, a re-POST of the OAuth token mints a new session
        clock.advance(3700)
        assert (await client.vehicles()).code == "1402"
        old = client.token
        assert (await client.session_post()).json()["code"] == 1000
        assert client.token != old and (await client.vehicles()).code == "1000"
        assert (
            await client.call(
                "GET",
                "api_v1",
                "/device-platform/user/vehicle/secure",
                f"needSharedCar=1&userId={client.user_id}",
                token=old,
            )
        ).code == "1402"

        # layer 2: the OAuth token is dead too -> 1501 -> PUT refresh with X-CLIENT-ID
        clock.advance(3 * DAY)
        assert (await client.vehicles()).code == "1402"
        dead = await client.session_post()
        assert dead.json()["code"] == 1501
        body = {"refreshToken": client.refresh, "proprietaryPlatform": "0"}
        wrong = await client.call(
            "PUT",
            "api_v1",
            "/auth/account/session/secure",
            "",
            body,
            token=None,
            headers={"X-CLIENT-ID": "somebody-else"},
        )
        assert wrong.json()["code"] == 1400
        put = await client.call(
            "PUT",
            "api_v1",
            "/auth/account/session/secure",
            "",
            body,
            token=None,
            headers={"X-CLIENT-ID": client.client_id or ""},
        )
        data = put.json()["data"]
        assert put.json()["code"] == 1000 and data["accessToken"].startswith("st2.s.")
        assert (await client.session_post(data["accessToken"])).json()["code"] == 1000
        assert (await client.vehicles()).code == "1000"

        # both dead: only a full login helps
        clock.advance(20 * DAY)
        assert (await client.session_post()).json()["code"] == 1501
        stale = await client.call(
            "PUT",
            "api_v1",
            "/auth/account/session/secure",
            "",
            {"refreshToken": data["refreshToken"], "proprietaryPlatform": "0"},
            token=None,
            headers={"X-CLIENT-ID": data["clientId"]},
        )
        assert stale.json()["code"] != 1000
        login = handle.logins["smart_eu"]
        await client.login_eu(login["username"], login["password"])
        assert (await client.vehicles()).code == "1000"


async def test_login_storm_trips_the_waf() -> None:
    options = {"smart": SmartCloudConfig(login_limit=3, login_window=600, login_block=1800)}
    async with running_sim(options=options) as (handle, clock, session):
        url = handle.urls["smart"]["awsapi"] + "/login-app/api/v1/authorize"
        statuses = []
        for _ in range(5):
            async with session.get(
                url, headers={"user-agent": WEBVIEW_UA}, allow_redirects=False
            ) as r:
                statuses.append(r.status)
                if r.status == 403:
                    assert int(r.headers["Retry-After"]) > 0
                    assert "text/html" in r.headers["Content-Type"]
        assert statuses == [302, 302, 302, 403, 403]
        client = SignedClient(session, handle.urls["smart"], clock=handle.clock)
        login = handle.logins["smart_intl"]
        async with session.post(
            handle.urls["smart"]["sg_app_api"] + "/iam/service/api/v1/login",
            json={"email": login["username"], "password": login["password"]},
            headers={"X-Ca-Key": "204587190"},
        ) as r:
            assert r.status == 403  # the block covers every login gateway
        clock.advance(1801)
        eu = handle.logins["smart_eu"]
        await client.login_eu(eu["username"], eu["password"])
        assert (await client.vehicles()).code == "1000"
