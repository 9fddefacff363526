// podctl's plugin for Cline, written by podctl into this agent's Cline config folder (`plugins/`)
// at every start (edits here are lost). It runs the agent's `podctl hook` commands: they report
// busy/idle to the pod's broker and print the messages to put into the model's context, each
// message once. No token or message passes through this file; the hook reads the agent's token
// file itself.
import { execFile } from "node:child_process"

const HOOKS = /*HOOKS*/null
const HOOK_TIMEOUT_MS = 5000
// Under the pod file's `permissions: ask|edits` (Cline's auto-approve off) each tool call but
// podctl's waits for an answer from podctl first, up to this long; with none, Cline asks in its pane.
const HOLD_TIMEOUT_MS = /*HOLD_TIMEOUT_MS*/0

// The hook reads the event's facts on stdin and answers with the JSON every CLI's hook gets
// ({"additionalContext": TEXT}, a decision {"decision", "message"}, or nothing: {}).
const hook = (native, facts = {}) =>
  new Promise((resolve) => {
    const [command, ...args] = HOOKS[native]
    const timeout = native === "beforeTool" ? HOLD_TIMEOUT_MS : HOOK_TIMEOUT_MS
    try {
      const child = execFile(command, args, { timeout }, (error, stdout) => {
        if (error) return resolve({})
        try {
          const out = String(stdout).trim()
          resolve(out ? JSON.parse(out) : {})
        } catch {
          resolve({})
        }
      })
      child.stdin?.end(JSON.stringify(facts))
    } catch {
      resolve({})
    }
  })

const context = (answer) => {
  const text = String(answer?.additionalContext ?? "")
  return text.trim() ? { appendContext: text } : undefined
}
// Sub-agents (spawn_agent, teammates) run their own runs: not the agent's turns.
const own = (event) => !event?.snapshot?.parentAgentId
// A failed run's error in the CLI's words: the run's last error (a string in its snapshot: the
// result's Error object reaches a plugin as {}), else the error's message.
const failure = (event) => {
  const last = event?.snapshot?.lastError
  if (typeof last === "string" && last) return last
  const message = event?.result?.error?.message
  return typeof message === "string" && message ? message : "its run failed"
}

let introduced = false
hook("plugin.start") // loaded when the CLI starts: the agent is up, idle

export default {
  name: "podctl",
  manifest: { capabilities: ["hooks"] },
  hooks: {
    beforeRun: async (event) => {
      if (!own(event)) return undefined
      const answer = await hook(introduced ? "beforeRun" : "beforeRun.first")
      introduced = true
      return context(answer)
    },
    beforeTool: async (event) => {
      const name = String(event?.tool?.name ?? "")
      if (!own(event)) return undefined
      if (name === "ask_question") {
        // Its question waits for an answer typed in the pane: the agent needs a person until the tool
        // ends. Asking it needs no approval first (it neither edits nor runs anything).
        const question = String(event.input?.question ?? "")
        await hook("beforeTool.question", { notification_type: "question", tool_name: name, message: question })
        return { policy: { autoApprove: true } }
      }
      if (!HOLD_TIMEOUT_MS) return undefined
      // podctl's own tools never ask (auto-approve off overrides the MCP server's autoApprove list).
      if (name.startsWith("podctl__")) return { policy: { autoApprove: true } }
      const answer = await hook("beforeTool", { tool_name: name, tool_input: event.input })
      if (answer.decision === "allow" || answer.decision === "always") return { policy: { autoApprove: true } }
      if (answer.decision === "deny") return { skip: true, reason: String(answer.message || "denied through podctl") }
      return undefined
    },
    afterTool: async (event) => (own(event) ? context(await hook("afterTool")) : undefined),
    afterRun: async (event) => {
      if (!own(event)) return
      if (event?.result?.status === "failed") await hook("afterRun.failed", { error: failure(event) })
      else await hook("afterRun")
    },
  },
}
