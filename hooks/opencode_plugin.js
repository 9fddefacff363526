// podctl's plugin for OpenCode, written by podctl into this agent's OPENCODE_CONFIG_DIR at every
// start (edits here are lost). It runs the agent's `podctl hook` commands: they report busy/idle to
// the pod's broker and print the messages to put into the model's context, each message once.
// No token or message passes through this file; the hook reads the agent's token file itself.
import { existsSync, rmSync, watch, writeFileSync } from "node:fs"
import { join } from "node:path"

const HOOKS = /*HOOKS*/null
const WAKE_DIR = /*WAKE_DIR*/null
const WAKE_FILE = /*WAKE_FILE*/null
const USER_ENV = /*USER_ENV*/null

export const Podctl = async ({ client, $ }) => {
  const children = new Set() // sub-agent (task tool) sessions: not the agent's own turns
  let chain = Promise.resolve()
  let session = null
  let busy = false

  // One hook at a time, in order: OpenCode does not await event hooks, so a slow "busy" could
  // otherwise land after the "idle" that followed it.
  const serial = (work) => (chain = chain.then(work).catch(() => undefined))
  // The hook's answer is the JSON every CLI's hook gets ({"additionalContext": TEXT}, or nothing).
  const hook = async (native) => {
    try {
      const out = (await $`${HOOKS[native]} < /dev/null`.quiet().nothrow().text()).trim()
      return out ? String(JSON.parse(out).additionalContext ?? "") : ""
    } catch {
      return ""
    }
  }
  // A hook told the facts of an event that may need a person (as Claude Code's hooks get them);
  // its answer as JSON ({"decision": ...} for a permission request), or null.
  const tell = async (native, facts) => {
    try {
      const out = (await $`${HOOKS[native]} < ${Buffer.from(JSON.stringify(facts))}`.quiet().nothrow().text()).trim()
      return out ? JSON.parse(out) : null
    } catch {
      return null
    }
  }
  // A permission request: its hook waits (not in the serial chain: it may take minutes) for
  // podctl's answer and OpenCode's API takes it; with none, OpenCode's own dialog answers.
  const ask = async (p) => {
    const patterns = Array.isArray(p.patterns) ? p.patterns : []
    const meta = p.metadata && typeof p.metadata === "object" ? p.metadata : {}
    const command = typeof meta.command === "string" ? meta.command : meta.filepath ?? meta.filePath ?? patterns.join(" ")
    const answer = await tell("permission.asked", {
      tool_name: String(p.permission ?? "permission"), tool_input: { command: String(command ?? ""), patterns },
    })
    if (!answer?.decision) return
    const reply = answer.decision === "deny" ? "reject" : "once"
    const message = answer.message || undefined
    // OpenCode's reply API (POST /permission/{id}/reply, with the reason as its feedback) through the
    // plugin's client; the older per-session route as a fallback (it takes no reason).
    try {
      const sent = await client._client.post({
        url: "/permission/{requestID}/reply", path: { requestID: p.id }, body: { reply, message },
        headers: { "Content-Type": "application/json" },
      })
      if (sent?.error || (sent?.response && !sent.response.ok)) throw new Error(String(sent?.response?.status))
    } catch {
      try {
        await client.postSessionIdPermissionsPermissionId({
          path: { id: p.sessionID, permissionID: p.id }, body: { response: reply },
        })
      } catch {}
    }
  }
  // The session start's answer (the pod, the agent's role and team, asks to it still open) goes into
  // the model's context with the first turn: OpenCode has no hook that adds context at start.
  let intro = ""
  const started = serial(async () => {
    intro = await hook("plugin.start")
  })
  const withIntro = (text) => {
    const all = [intro, text].filter((t) => t.trim()).join("\n\n")
    if (all.trim()) intro = ""
    return all
  }
  const prompt = async (text) => {
    if (!session || !text.trim()) return false
    await client.session.promptAsync({ path: { id: session }, body: { parts: [{ type: "text", text }] } })
    return true
  }
  const wakeFile = join(WAKE_DIR, WAKE_FILE)
  const wake = async () => {
    if (!existsSync(wakeFile)) return
    rmSync(wakeFile, { force: true })
    let answer = "no session"
    if (busy) answer = "busy"
    else if (session) answer = (await prompt(withIntro(await hook("session.status.idle")))) ? "prompted" : "nothing waiting"
    writeFileSync(wakeFile + ".ack", answer)
  }

  try {
    // Any change in the folder: Bun does not always name the file of a rename.
    watch(WAKE_DIR, () => {
      if (existsSync(wakeFile)) serial(wake)
    })
  } catch {}

  return {
    event: async ({ event }) => {
      const p = event.properties || {}
      if (event.type === "session.created" && p.info?.parentID) children.add(p.info.id)
      if (event.type === "permission.asked" && !children.has(p.sessionID)) {
        ask(p)
        return
      }
      if (event.type === "question.asked" && !children.has(p.sessionID)) {
        const first = Array.isArray(p.questions) ? p.questions[0] : null
        const message = String(first?.question ?? first?.header ?? "a question")
        serial(() => tell("question.asked", { notification_type: "question", message, tool_name: "question" }))
        return
      }
      if (event.type === "session.error" && !children.has(p.sessionID)) {
        const error = p.error ?? {}
        if (error.name === "MessageAbortedError") return // the person pressed Escape: not a failure
        const message = String(error.data?.message ?? error.message ?? error.name ?? "the session failed")
        serial(() => tell("session.error", { error: String(error.name ?? "error"), message }))
        return
      }
      if (event.type !== "session.status" || children.has(p.sessionID)) return
      session = p.sessionID
      const type = p.status?.type
      if (type === "busy" && !busy) {
        busy = true
        serial(() => hook("session.status.busy"))
      } else if (type === "idle") {
        busy = false
        serial(async () => {
          const text = await hook("session.status.idle")
          if (text.trim()) await prompt(withIntro(text))
        })
      }
    },
    "chat.message": async (input, output) => {
      if (children.has(input.sessionID)) return
      session = output.message.sessionID
      await started
      const text = withIntro(await hook("chat.message"))
      if (!text.trim()) return
      const last = output.parts[output.parts.length - 1]
      output.parts.push({
        id: (last?.id ?? "prt_") + "zpodctl", // parts are ordered by id: after the user's text
        sessionID: output.message.sessionID, messageID: output.message.id,
        type: "text", synthetic: true, text,
      })
    },
    "tool.execute.after": async (input, output) => {
      if (children.has(input.sessionID)) return
      const text = await hook("tool.execute.after")
      if (!text.trim()) return
      if (Array.isArray(output.content)) output.content.push({ type: "text", text }) // an MCP tool's result
      else output.output = (output.output ?? "") + "\n\n" + text
    },
    "shell.env": async (_input, output) => {
      // Commands the agent runs see the user's folders, not the agent's: the user's value, or none (undefined
      // leaves the variable out of the command's environment).
      for (const [name, value] of Object.entries(USER_ENV)) output.env[name] = value ?? undefined
    },
    dispose: async () => {
      await hook("dispose")
    },
  }
}
