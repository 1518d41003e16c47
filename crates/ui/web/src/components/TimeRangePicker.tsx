// The time-range picker: relative presets (`now-1h` … `now`) and absolute from/to; it only
// writes `from`/`to` into the URL, pages resolve them when they query.
import { useEffect, useRef, useState } from "preact/hooks";
import { RELATIVE_RANGES, describeRange, fromLocalInput, resolveRange, toLocalInput } from "../time";

export function TimeRangePicker(props: { from: string | null; to: string | null; onChange: (from: string, to: string) => void }) {
  const [open, setOpen] = useState(false);
  const [absFrom, setAbsFrom] = useState("");
  const [absTo, setAbsTo] = useState("");
  const [invalid, setInvalid] = useState("");
  const root = useRef<HTMLDivElement>(null);

  // The absolute fields are filled in the same update that opens the picker: filled later (in
  // an effect), they could overwrite what someone typed the moment the picker appeared.
  const toggle = () => {
    if (!open) {
      const { startSecs, endSecs } = resolveRange(props.from, props.to);
      setAbsFrom(toLocalInput(startSecs));
      setAbsTo(toLocalInput(endSecs));
      setInvalid("");
    }
    setOpen(!open);
  };

  useEffect(() => {
    if (!open) return;
    const onDown = (event: MouseEvent) => {
      if (root.current && !root.current.contains(event.target as Node)) setOpen(false);
    };
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") setOpen(false);
    };
    document.addEventListener("mousedown", onDown);
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("mousedown", onDown);
      document.removeEventListener("keydown", onKey);
    };
  }, [open]);

  const choose = (from: string, to: string) => {
    props.onChange(from, to);
    setOpen(false);
  };
  const applyAbsolute = (event: Event) => {
    event.preventDefault();
    const start = fromLocalInput(absFrom);
    const end = fromLocalInput(absTo);
    if (start === undefined || end === undefined || start >= end) {
      setInvalid("From must be a valid time before To.");
      return;
    }
    choose(String(start), String(end));
  };

  return (
    <div class="picker" ref={root}>
      <button type="button" class="picker-button" aria-haspopup="dialog" aria-expanded={open} onClick={toggle} title="Time range">
        {describeRange(props.from, props.to)}
      </button>
      {open && (
        <div class="picker-menu" role="dialog" aria-label="Time range">
          <div class="picker-presets">
            {RELATIVE_RANGES.map((range) => (
              <button type="button" key={range.from} class={(props.from || "now-1h") === range.from && (props.to || "now") === "now" ? "active" : ""} onClick={() => choose(range.from, "now")}>
                {range.label}
              </button>
            ))}
          </div>
          <form class="picker-absolute" onSubmit={applyAbsolute}>
            <label>
              From <input type="datetime-local" step="1" value={absFrom} onInput={(e) => setAbsFrom((e.target as HTMLInputElement).value)} />
            </label>
            <label>
              To <input type="datetime-local" step="1" value={absTo} onInput={(e) => setAbsTo((e.target as HTMLInputElement).value)} />
            </label>
            {invalid && <div class="field-error">{invalid}</div>}
            <button type="submit" class="primary">Apply absolute range</button>
          </form>
        </div>
      )}
    </div>
  );
}
