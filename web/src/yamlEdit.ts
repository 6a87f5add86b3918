// What the admin's YAML editors (IVR flows, business-hours calendars) share: the texts kept per
// name while the admin moves between them (edits of another file are not lost), and the outcome
// of the last validate / publish, shown as `file:line: message` problems.
import { computed, reactive, ref } from 'vue'
import { ApiError, api } from './api'
import { showError } from './notify'
import type { Problem, ValidateAnswer, YamlText } from './types'

export type ProblemLike = Problem | string

export interface CheckResult {
  kind: '' | 'valid' | 'invalid' | 'published' | 'error'
  problems: ProblemLike[]
  warnings: ProblemLike[]
  message: string
}

/** `file:line: message` (the file falls back to the one being edited). */
export function problemText(p: ProblemLike, fallbackFile: string): string {
  if (typeof p === 'string') return p
  const file = p.file || fallbackFile || '?'
  return p.line !== null && p.line !== undefined ? `${file}:${p.line}: ${p.message}` : `${file}: ${p.message}`
}

/** The outcome of the last validate / publish / upload. */
export function useCheckResult() {
  const result = reactive<CheckResult>({ kind: '', problems: [], warnings: [], message: '' })

  function clearResult(): void {
    result.kind = ''
    result.problems = []
    result.warnings = []
    result.message = ''
  }

  function takeValidate(answer: ValidateAnswer): void {
    result.problems = answer.problems ?? []
    result.warnings = answer.warnings ?? []
    result.kind = answer.ok && !result.problems.length ? 'valid' : 'invalid'
  }

  function takePublished(message: string, warnings: ProblemLike[] | undefined): void {
    result.kind = 'published'
    result.problems = []
    result.warnings = warnings ?? []
    result.message = message
  }

  /** A 422 with problems shows them; a 401 the user gave up on shows nothing; the rest a message. */
  function takeError(e: unknown): void {
    if (e instanceof ApiError && Array.isArray(e.data.problems)) {
      result.kind = 'invalid'
      result.problems = e.data.problems as ProblemLike[]
      result.warnings = Array.isArray(e.data.warnings) ? (e.data.warnings as ProblemLike[]) : []
      result.message = e.message
    } else if (e instanceof ApiError && e.status === 401) {
      // the user left for the log-in page
    } else {
      showError(e)
    }
  }

  return { result, clearResult, takeValidate, takePublished, takeError }
}

/** YAML texts fetched from `urlOf(name)` (→ {name, file, yaml}), the one selected and its edits. */
export function useYamlTexts(urlOf: (name: string) => string) {
  const texts = reactive<Record<string, { original: string; current: string; file?: string }>>({})
  const selected = ref('')
  const loading = ref(false)

  async function fetchText(name: string, keepEdits: boolean): Promise<void> {
    loading.value = true
    try {
      const answer = await api.get<YamlText>(urlOf(name))
      const entry = texts[name]
      const edited = keepEdits && entry && entry.current !== entry.original ? entry.current : null
      texts[name] = { original: answer.yaml, current: edited ?? answer.yaml, file: answer.file }
    } catch (e) {
      showError(e)
    } finally {
      loading.value = false
    }
  }

  const editorText = computed<string>({
    get: () => texts[selected.value]?.current ?? '',
    set: (value) => {
      const entry = texts[selected.value]
      if (entry) entry.current = value
    },
  })

  function edited(name: string): boolean {
    const entry = texts[name]
    return !!entry && entry.current !== entry.original
  }

  /** After a publish: what was sent is now what the server has. */
  function saved(name: string, yaml: string): void {
    const entry = texts[name]
    if (entry) entry.original = yaml
  }

  function revert(): void {
    const entry = texts[selected.value]
    if (entry) entry.current = entry.original
  }

  /** The file name problems without one are reported against. */
  const currentFile = computed(() => texts[selected.value]?.file || selected.value)

  return { texts, selected, loading, fetchText, editorText, edited, saved, revert, currentFile }
}
