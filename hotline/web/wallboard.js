// /wallboard: live queues, calls and agents, built from floor.snapshot and then the events.
"use strict";
(() => {
  const { FloorSocket, el, seconds, pct } = window.Floor;
  const state = { queues: new Map(), calls: new Map(), agents: new Map(), supervise: false, snapshots: 0 };
  const $ = (id) => document.getElementById(id);

  function applySnapshot(snap) {
    state.snapshots += 1;
    state.queues = new Map(snap.queues.map((q) => [q.queue, { figures: q.figures }]));
    state.agents = new Map(snap.agents.map((a) => [a.agent_id, { ...a }]));
    state.calls = new Map(snap.calls.map((c) => [c.call_id, { ...c }]));
    render();
  }

  function call(cid, time) {
    if (!state.calls.has(cid)) state.calls.set(cid, { call_id: cid, phase: "ivr", since: time });
    return state.calls.get(cid);
  }

  function applyEvent(e) {
    const d = e.data, cid = e.call_id, t = e.time;
    switch (e.event) {
      case "call.offered": Object.assign(call(cid, t), { caller: d.caller, phase: "ivr", since: t }); break;
      case "call.queued": Object.assign(call(cid, t), { phase: "queued", queue: d.queue, since: t, agent_id: null }); break;
      case "agent.offered": Object.assign(call(cid, t), { ringing: d.agent_id }); break;
      case "agent.offer_failed": call(cid, t).ringing = null; break;
      case "call.connected":
      case "callback.connected":
        Object.assign(call(cid, t), { phase: "connected", agent_id: d.agent_id, queue: d.queue, since: t, ringing: null });
        break;
      case "call.consult_started": call(cid, t).phase = "consulting"; break;
      case "call.consult_ended": call(cid, t).phase = "connected"; break;
      case "call.conference_started": call(cid, t).phase = "conference"; break;
      case "call.transferred": Object.assign(call(cid, t), { phase: "connected", agent_id: d.to_agent || d.to }); break;
      case "call.assist_started": call(cid, t).phase = "assisted"; break;
      case "call.assist_done": call(cid, t).phase = "connected"; break;
      case "supervisor.monitor_started":
      case "supervisor.monitor_changed":
        call(cid, t).monitor = { supervisor: d.supervisor, mode: d.mode };
        break;
      case "supervisor.monitor_ended": if (state.calls.has(cid)) state.calls.get(cid).monitor = null; break;
      case "call.ended": state.calls.delete(cid); break;
      case "agent.state_changed": {
        const a = state.agents.get(d.agent_id) || { agent_id: d.agent_id, name: d.agent_id, queues: [] };
        Object.assign(a, { state: d.to, reason: d.reason, since: t });
        if (["available", "not_ready", "logged_out"].includes(d.to)) a.call_id = null;
        state.agents.set(d.agent_id, a);
        break;
      }
      case "queue.stats": state.queues.set(d.queue, { figures: d.figures }); break;
      default: return;
    }
    if (cid && (e.event === "agent.offered" || e.event === "call.connected")) {
      const a = state.agents.get(d.agent_id);
      if (a) a.call_id = cid;
    }
    render();
  }

  async function monitor(cid, mode) {
    const c = state.calls.get(cid);
    const supervisor = $("supervisor").value.trim();
    localStorage.setItem("hotline.supervisor", supervisor);
    $("sup-error").textContent = "";
    try {
      if (mode === "stop") await sock.request("call.monitor_stop", { call_id: cid });
      else if (c && c.monitor) await sock.request("call.monitor_mode", { call_id: cid, mode });
      else {
        if (!supervisor) throw new Error("enter your agent id or SIP URI first");
        await sock.request("call.monitor", { call_id: cid, supervisor, mode });
      }
    } catch (err) {
      $("sup-error").textContent = err.message;
    }
  }

  function render() {
    const now = Date.now();
    const qbody = $("queues").tBodies[0];
    qbody.replaceChildren();
    for (const [name, q] of state.queues) {
      const waiting = [...state.calls.values()].filter((c) => c.phase === "queued" && c.queue === name);
      const longest = waiting.reduce((m, c) => (m === null || c.since < m ? c.since : m), null);
      const by = {};
      for (const a of state.agents.values()) if ((a.queues || []).includes(name)) by[a.state] = (by[a.state] || 0) + 1;
      const f = q.figures || {};
      qbody.append(el("tr", { "data-queue": name },
        el("td", {}, name),
        el("td", { class: "num big", "data-waiting": String(waiting.length) }, waiting.length),
        el("td", { class: "num" }, longest ? seconds(longest, now) : "–"),
        el("td", { class: "num" }, pct(f.sl_offered)),
        el("td", { class: "num" }, f.answered ?? 0),
        el("td", { class: "num" }, f.abandoned ?? 0),
        el("td", {}, Object.entries(by).map(([s, n]) => el("span", { class: `pill ${s}` }, `${s.replace("_", " ")} ${n}`)), " "),
      ));
    }
    const cbody = $("calls").tBodies[0];
    cbody.replaceChildren();
    const calls = [...state.calls.values()].filter((c) => c.phase !== "ivr" || c.caller);
    for (const c of calls) {
      const talking = ["connected", "consulting", "conference", "assisted"].includes(c.phase);
      const m = c.monitor;
      const buttons = state.supervise && talking
        ? ["listen", "whisper", "barge"].map((mode) => el("button", {
          class: m && m.mode === mode ? "on" : "", "data-mode": mode, onclick: () => monitor(c.call_id, mode),
        }, mode)).concat(m ? [el("button", { "data-mode": "stop", onclick: () => monitor(c.call_id, "stop") }, "stop")] : [])
        : [];
      cbody.append(el("tr", { "data-call": c.call_id, "data-phase": c.phase },
        el("td", {}, el("code", {}, c.call_id)),
        el("td", {}, c.caller || ""),
        el("td", {}, c.queue || ""),
        el("td", {}, el("span", { class: `pill ${c.phase}` }, c.phase), c.ringing && !talking ? ` ringing ${c.ringing}` : ""),
        el("td", {}, talking ? c.agent_id || "" : ""),
        el("td", { class: "num" }, seconds(c.since, now)),
        el("td", {}, m ? `${m.supervisor} (${m.mode})` : ""),
        el("td", {}, el("div", { class: "row" }, buttons)),
      ));
    }
    const abody = $("agents").tBodies[0];
    abody.replaceChildren();
    for (const a of state.agents.values()) {
      abody.append(el("tr", { "data-agent": a.agent_id, "data-state": a.state },
        el("td", {}, a.agent_id),
        el("td", {}, a.name || ""),
        el("td", {}, el("span", { class: `pill ${a.state}` }, a.state.replace("_", " ")), a.reason ? ` (${a.reason})` : ""),
        el("td", { class: "num" }, seconds(a.since, now)),
        el("td", {}, a.call_id ? el("code", {}, a.call_id) : ""),
      ));
    }
    $("clock").textContent = new Date(now).toLocaleTimeString();
  }

  function status(s, why) {
    const node = $("status");
    node.textContent = why ? `${s}: ${why}` : s;
    node.className = `status ${s === "live" ? "live" : s === "down" || s === "error" ? "down" : ""}`;
    if (s === "error") {
      $("login").classList.remove("hidden");
      $("login-error").textContent = why || "";
      sock.close();
    }
  }

  let sock = null;
  function start(token) {
    $("login").classList.add("hidden");
    sock = new FloorSocket({
      token,
      onSnapshot: applySnapshot,
      onEvent: applyEvent,
      onStatus: status,
      onAuth: (who) => {
        state.supervise = who.scopes.includes("supervise") || who.scopes.includes("admin");
        $("sup-row").classList.toggle("hidden", !state.supervise);
        if (!$("supervisor").value) $("supervisor").value = who.agent || localStorage.getItem("hotline.supervisor") || "";
      },
    });
    window.hotlineWallboard = { state, sock };
    sock.connect();
  }

  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  if (fromUrl) {
    history.replaceState(null, "", location.pathname); // keep the secret out of the address bar
    start(fromUrl);
  } else {
    $("login").classList.remove("hidden");
  }
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    start($("token").value);
  });
  setInterval(render, 1000);
})();
