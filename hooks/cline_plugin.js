// podctl's plugin for Cline, written by podctl into this agent's Cline config folder (`plugins/`)
// at every start (edits here are lost). It runs the agent's `podctl hook` commands: they report
// busy/idle to the pod's broker and print the messages to put into the model's context, each
// message once. No token or message passes through this file; the hook reads the agent's token
// file itself.
import { execFile } from "node:child_process"

const HOOKS = /*HOOKS*/null
const HOOK_TIMEOUT_MS = 5000

// The hook's answer is the JSON every CLI's hook gets ({"additionalContext": TEXT}, or nothing).
const hook = (native) =>
  new Promise((resolve) => {
    const [command, ...args] = HOOKS[native]
    try {
      const child = execFile(command, args, { timeout: HOOK_TIMEOUT_MS }, (error, stdout) => {
        if (error) return resolve("")
        try {
          const out = String(stdout).trim()
          resolve(out ? String(JSON.parse(out).additionalContext ?? "") : "")
        } catch {
          resolve("")
        }
      })
      child.stdin?.end("{}")
    } catch {
      resolve("")
    }
  })

const context = (text) => (text.trim() ? { appendContext: text } : undefined)
// Sub-agents (spawn_agent, teammates) run their own runs: not the agent's turns.
const own = (event) => !event?.snapshot?.parentAgentId

let introduced = false
hook("plugin.start") // loaded when the CLI starts: the agent is up, idle

export default {
  name: "podctl",
  manifest: { capabilities: ["hooks"] },
  hooks: {
    beforeRun: async (event) => {
      if (!own(event)) return undefined
      const text = await hook(introduced ? "beforeRun" : "beforeRun.first")
      introduced = true
      return context(text)
    },
    afterTool: async (event) => (own(event) ? context(await hook("afterTool")) : undefined),
    afterRun: async (event) => {
      if (own(event)) await hook("afterRun")
    },
  },
}
