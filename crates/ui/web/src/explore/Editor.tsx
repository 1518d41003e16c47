// The query editor (TraceQL, or PromQL on the metrics page): CodeMirror with highlighting,
// server-backed autocomplete, Ctrl/Cmd+Enter to run, and the server's parse error drawn at its
// line and column.
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { bracketMatching } from "@codemirror/language";
import { setDiagnostics } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import { EditorView, keymap, placeholder } from "@codemirror/view";
import { useEffect, useRef } from "preact/hooks";
import type { ServerError } from "./errors";
import { promqlCompletion, promqlLanguage } from "../metrics/promql";
import { CompletionRange, traceqlCompletion, traceqlHighlighting, traceqlLanguage } from "./traceql";

const LANGUAGES = {
  traceql: {
    language: traceqlLanguage,
    completion: traceqlCompletion,
    placeholder: '{ resource.service.name = "frontend" && status = error }',
    label: "TraceQL query",
  },
  promql: {
    language: promqlLanguage,
    completion: promqlCompletion,
    placeholder: 'sum by (service) (rate(traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR"}[5m]))',
    label: "PromQL query",
  },
};

export function QueryEditor(props: {
  /** Fixed for the editor's life: switch languages with a new `key`. */
  language?: keyof typeof LANGUAGES;
  /** Shown when the editor mounts and whenever `revision` changes (a new URL query, the builder);
   * between those the editor owns its text, so typing never races a re-render. */
  value: string;
  revision: number;
  onChange: (value: string) => void;
  onRun: () => void;
  error: ServerError | null;
  range: CompletionRange;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  // Handlers and range change every render; the editor reads them through refs.
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    const runKey = { key: "Mod-Enter", run: () => (latest.current.onRun(), true) };
    const language = props.language ?? "traceql";
    const spec = LANGUAGES[language];
    const editor = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: props.value,
        extensions: [
          history(),
          closeBrackets(),
          bracketMatching(),
          spec.language,
          // The highlight style maps token kinds to the theme's colours; both languages share it.
          traceqlHighlighting,
          autocompletion({ override: [spec.completion(() => latest.current.range)], activateOnTyping: true }),
          keymap.of([runKey, ...closeBracketsKeymap, ...completionKeymap, ...historyKeymap, ...defaultKeymap]),
          placeholder(spec.placeholder),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ "aria-label": spec.label, "data-testid": `${language}-editor` }),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) latest.current.onChange(update.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = editor;
    const focusOnSlash = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (event.key === "/" && !target.closest("input, textarea, select, .cm-editor")) {
        event.preventDefault();
        editor.focus();
      }
    };
    document.addEventListener("keydown", focusOnSlash);
    return () => {
      document.removeEventListener("keydown", focusOnSlash);
      editor.destroy();
    };
  }, []);

  // The URL changed under the editor (back button, a builder click): show that query.
  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    const doc = editor.state.doc.toString();
    if (doc !== props.value) editor.dispatch({ changes: { from: 0, to: doc.length, insert: props.value } });
  }, [props.revision]);

  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    const diagnostics = [];
    if (props.error && props.error.line !== undefined) {
      const doc = editor.state.doc;
      const lineNumber = Math.min(Math.max(props.error.line, 1), doc.lines);
      const line = doc.line(lineNumber);
      const from = Math.min(line.from + Math.max((props.error.column ?? 1) - 1, 0), line.to);
      const to = Math.min(from + 1, doc.length);
      diagnostics.push({ from, to, severity: "error" as const, message: props.error.message });
    }
    editor.dispatch(setDiagnostics(editor.state, diagnostics));
  }, [props.error]);

  return <div class="editor" ref={host} />;
}
