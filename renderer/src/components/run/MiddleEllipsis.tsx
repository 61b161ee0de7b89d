// A long name cut in the middle when it does not fit ("SmolLM2-135M-Ins…2bit-e8p-20251205-1350"), so
// the end that tells runs apart (bits, codebook, time) stays visible; the whole name is its title.
export function MiddleEllipsis({ text, tail = 20, className }: { text: string; tail?: number; className?: string }) {
  const keep = Math.min(tail, Math.floor(text.length / 2));
  return (
    <span className={`mid-ellipsis ${className ?? ''}`} title={text}>
      <span className="mid-ellipsis-head">{text.slice(0, text.length - keep)}</span>
      <span className="mid-ellipsis-tail">{text.slice(text.length - keep)}</span>
    </span>
  );
}
