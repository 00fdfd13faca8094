// /agent: one agent's desk over the CTI WebSocket: availability, the offered call's screen-pop,
// call control (hold, transfer, consult, conference, assist, hang-up), dispositions, wrap-up.
"use strict";
(() => {
  const { FloorSocket, el, seconds } = window.Floor;
  const $ = (id) => document.getElementById(id);
  const st = {
    me: null, state: "logged_out", reason: null, since: null,
    call: null, // {call_id, queue, phase, since, pop}
    last: null, // the call the agent wraps up: {call_id, queue}
    wrapUntil: null, queues: new Map(), defaults: [], flows: [],
  };
  let sock = null;

  function codesFor(queue) {
    const q = st.queues.get(queue || "");
    return (q && q.dispositions.length ? q.dispositions : st.defaults) || [];
  }

  function applySnapshot(snap) {
    st.queues = new Map(snap.queues.map((q) => [q.queue, q]));
    st.defaults = snap.default_dispositions;
    st.flows = snap.flows;
    $("reason").replaceChildren(...snap.not_ready_reasons.map((r) => el("option", { value: r }, r)));
    $("assist-flow").replaceChildren(...snap.flows.filter((f) => f !== "main").map((f) => el("option", { value: f }, f)));
    const a = snap.agents.find((x) => x.agent_id === st.me);
    if (a) Object.assign(st, { state: a.state, reason: a.reason, since: a.since });
    const c = snap.calls.find((x) => x.agent_id === st.me);
    st.call = c ? { call_id: c.call_id, queue: c.queue, phase: c.phase, since: c.since, pop: null } : null;
    render();
  }

  function mine(e) {
    return st.call && e.call_id === st.call.call_id;
  }

  function applyEvent(e) {
    const d = e.data;
    switch (e.event) {
      case "agent.state_changed":
        if (d.agent_id !== st.me) return;
        Object.assign(st, { state: d.to, reason: d.reason, since: e.time });
        if (d.to === "wrap_up" && st.last) {
          const q = st.queues.get(st.last.queue || "");
          st.wrapUntil = Date.parse(e.time) + 1000 * (q ? q.wrap_up : 0);
        }
        if (d.to !== "wrap_up") st.wrapUntil = null;
        break;
      case "agent.offered":
        if (d.agent_id !== st.me) return;
        st.call = { call_id: e.call_id, queue: d.queue, phase: "ringing", since: e.time, pop: d.data };
        break;
      case "agent.offer_failed":
        if (d.agent_id === st.me && mine(e) && st.call.phase === "ringing") st.call = null;
        break;
      case "call.connected":
      case "callback.connected":
        if (d.agent_id !== st.me) return;
        st.call = { ...(mine(e) ? st.call : { call_id: e.call_id, pop: null }), queue: d.queue, phase: "connected", since: e.time };
        $("dispo-result").textContent = "";
        break;
      case "call.consult_started":
      case "call.consult_connected":
        if (!mine(e)) return;
        st.call.phase = "consulting";
        st.call.consult = `${e.event === "call.consult_connected" ? "talking to" : "ringing"} ${d.target_agent || d.to}`;
        break;
      case "call.conference_started":
        if (!mine(e)) return;
        st.call.phase = "conference";
        st.call.consult = `conference with ${d.target_agent || ""}`;
        break;
      case "call.consult_ended":
        if (!mine(e)) return;
        st.call.phase = "connected";
        st.call.consult = null;
        break;
      case "call.transferred":
        if (d.from_agent === st.me && mine(e)) {
          st.last = { call_id: e.call_id, queue: st.call.queue };
          st.call = null;
        } else if (d.to_agent === st.me) {
          st.call = { call_id: e.call_id, queue: null, phase: "connected", since: e.time, pop: null };
        }
        break;
      case "call.assist_started":
        if (!mine(e)) return;
        st.call.phase = "assisted";
        $("assist-result").textContent = `${d.flow}: the caller is in the flow…`;
        break;
      case "call.assist_done":
        if (!mine(e)) return;
        st.call.phase = "connected";
        $("assist-result").textContent = `${d.flow}: ${d.result} ${JSON.stringify(d.variables)}`;
        break;
      case "call.ended":
        if (!mine(e)) return;
        st.last = { call_id: e.call_id, queue: st.call.queue, pop: st.call.pop };
        st.call = null;
        break;
      case "call.disposition":
        if (d.agent_id !== st.me) return;
        $("dispo-result").textContent = `Saved: ${d.code}${d.note ? ` (${d.note})` : ""}`;
        $("dispo-result").dataset.code = d.code;
        break;
      default:
        return;
    }
    render();
  }

  function renderPop(pop) {
    const dl = $("pop");
    dl.replaceChildren();
    $("pop-none").classList.toggle("hidden", !!pop);
    dl.classList.toggle("hidden", !pop);
    if (!pop) return;
    const add = (k, v) => { if (v !== undefined && v !== null && v !== "") dl.append(el("dt", {}, k), el("dd", { "data-field": k }, v)); };
    add("caller", pop.caller);
    const p = pop.profile || {};
    add("name", p.name);
    add("tier", p.tier);
    if (p.assisted) add("assisted", "yes: speak slowly, take your time");
    add("language", p.language);
    if (p.last_sentiment) add("last sentiment", p.last_sentiment);
    if (p.recent && p.recent.length) {
      add("recent contacts", p.recent.map((r) => `${r.minutes_ago} min ago: ${r.cause}${r.queue ? ` (${r.queue})` : ""}`).join("; "));
    }
    add("ivr path", (pop.ivr_path || []).join(" › "));
    add("inputs", (pop.inputs || []).map((i) => `${i.node}=${i.input}`).join(", "));
    if (pop.escalation) add("escalation", `${pop.escalation.node}: ${pop.escalation.reason}`);
    const known = new Set(["caller", "profile", "ivr_path", "inputs", "escalation", "flow", "flow_version", "interrupt"]);
    for (const [k, v] of Object.entries(pop)) if (!known.has(k)) add(k, typeof v === "object" ? JSON.stringify(v) : v);
  }

  function render() {
    const now = Date.now();
    $("me").textContent = st.me ? `agent ${st.me}` : "";
    const pill = $("agent-state");
    pill.className = `pill ${st.state}`;
    pill.textContent = st.state.replace("_", " ") + (st.reason ? ` (${st.reason})` : "");
    pill.dataset.state = st.state;
    $("in-state").textContent = seconds(st.since, now);
    $("wrap").classList.toggle("hidden", st.state !== "wrap_up");
    if (st.wrapUntil) $("wrap-timer").textContent = `${Math.max(0, Math.ceil((st.wrapUntil - now - Floor.skew()) / 1000))} s`;
    else $("wrap-timer").textContent = seconds(st.since, now);
    const c = st.call;
    $("call-none").classList.toggle("hidden", !!c);
    $("call-info").classList.toggle("hidden", !c);
    if (c) {
      $("call-phase").className = `pill ${c.phase}`;
      $("call-phase").textContent = c.phase === "ringing" ? "ringing: answer on your phone" : c.phase;
      $("call-id").textContent = c.call_id;
      $("call-time").textContent = seconds(c.since, now);
      const talking = c.phase === "connected";
      for (const id of ["btn-hold", "btn-retrieve", "btn-blind", "btn-consult", "btn-assist"]) $(id).disabled = !talking;
      $("btn-hangup").disabled = c.phase === "ringing";
      $("consult-row").classList.toggle("hidden", !c.consult);
      $("consult-info").textContent = c.consult || "";
      $("btn-conference").disabled = c.phase !== "consulting";
    }
    renderPop(c ? c.pop : st.state === "wrap_up" && st.last ? st.last.pop : null);
    const target = c && c.phase !== "ringing" ? c : st.state === "wrap_up" ? st.last : null;
    $("dispo-box").classList.toggle("hidden", !target);
    if (target) {
      const codes = codesFor(target.queue);
      const sel = $("dispo-code");
      if (sel.dataset.for !== `${target.call_id}:${codes.join(",")}`) {
        sel.replaceChildren(...codes.map((x) => el("option", { value: x }, x)));
        sel.dataset.for = `${target.call_id}:${codes.join(",")}`;
      }
    }
  }

  async function run(cmd, args, errorBox) {
    $(errorBox).textContent = "";
    try {
      return await sock.request(cmd, { agent: st.me, ...args });
    } catch (err) {
      $(errorBox).textContent = `${err.code || "error"}: ${err.message}`;
      return null;
    }
  }

  function callCmd(cmd, args) {
    if (st.call) run(cmd, { call_id: st.call.call_id, ...(args || {}) }, "call-error");
  }

  function wire() {
    $("btn-login").onclick = () => {
      const contact = $("contact").value.trim();
      run("agent.login", contact ? { contact } : {}, "desk-error");
    };
    $("btn-ready").onclick = () => run("agent.ready", {}, "desk-error");
    $("btn-not-ready").onclick = () => run("agent.not_ready", { reason: $("reason").value }, "desk-error");
    $("btn-logout").onclick = () => run("agent.logout", {}, "desk-error");
    $("btn-end-wrap").onclick = () => run("agent.end_wrap_up", {}, "desk-error");
    $("btn-hold").onclick = () => callCmd("call.hold");
    $("btn-retrieve").onclick = () => callCmd("call.retrieve");
    $("btn-hangup").onclick = () => callCmd("call.hangup");
    $("btn-blind").onclick = () => {
      const to = $("xfer-to").value.trim();
      callCmd("call.transfer", to.startsWith("sip:") || to.startsWith("sips:") ? { to } : { queue: to });
    };
    $("btn-consult").onclick = () => callCmd("call.consult", { to: $("xfer-to").value.trim() });
    $("btn-complete").onclick = () => callCmd("call.transfer_complete");
    $("btn-conference").onclick = () => callCmd("call.conference");
    $("btn-cancel").onclick = () => callCmd("call.consult_cancel");
    $("btn-assist").onclick = () => callCmd("call.assist", { flow: $("assist-flow").value });
    $("btn-dispo").onclick = () => {
      const target = st.call && st.call.phase !== "ringing" ? st.call : st.last;
      if (!target) return;
      const note = $("dispo-note").value.trim();
      run("agent.disposition", { call_id: target.call_id, code: $("dispo-code").value, note }, "call-error");
    };
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

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    sock = new FloorSocket({
      token: $("token").value,
      onAuth: (who) => {
        st.me = who.agent || $("agent-id").value.trim() || null;
        if (!st.me) {
          status("error", "this token is not an agent's: enter the agent id too");
          return;
        }
        $("login").classList.add("hidden");
        $("desk").classList.remove("hidden");
        $("work").classList.remove("hidden");
      },
      onSnapshot: applySnapshot,
      onEvent: applyEvent,
      onStatus: status,
    });
    window.hotlineAgent = { st, sock };
    sock.connect();
  });
  wire();
  setInterval(render, 1000);
})();
