// The studio's small design system: cards, stats, badges, progress bars and the error card. Plain
// elements with class names from styles/app.css; every screen builds from these.
import type { ReactNode } from 'react';

export function Card(props: { title?: ReactNode; actions?: ReactNode; className?: string; children: ReactNode; testId?: string }) {
  return (
    <section className={`card ${props.className ?? ''}`} data-testid={props.testId}>
      {(props.title || props.actions) && (
        <header className="card-header">
          {props.title && <h3 className="card-title">{props.title}</h3>}
          {props.actions && <div className="card-actions">{props.actions}</div>}
        </header>
      )}
      {props.children}
    </section>
  );
}

export function Stat(props: { label: string; value: ReactNode; hint?: ReactNode }) {
  return (
    <div className="stat">
      <dt className="stat-label">{props.label}</dt>
      <dd className="stat-value">
        {props.value}
        {props.hint && <span className="stat-hint">{props.hint}</span>}
      </dd>
    </div>
  );
}

export function Badge(props: { tone?: 'neutral' | 'accent' | 'ok' | 'warn' | 'danger'; children: ReactNode; title?: string }) {
  return (
    <span className={`badge badge-${props.tone ?? 'neutral'}`} title={props.title}>
      {props.children}
    </span>
  );
}

/** A determinate bar when `fraction` is a number, an indeterminate one when it is null. */
export function ProgressBar(props: { fraction: number | null; label: string; tone?: 'accent' | 'ok' | 'danger' }) {
  const pct = props.fraction === null ? null : Math.max(0, Math.min(1, props.fraction)) * 100;
  return (
    <div
      className={`progress progress-${props.tone ?? 'accent'} ${pct === null ? 'progress-indeterminate' : ''}`}
      role="progressbar"
      aria-label={props.label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={pct === null ? undefined : Math.round(pct)}
    >
      <div className="progress-fill" style={pct === null ? undefined : { width: `${pct}%` }} />
    </div>
  );
}

export function ErrorCard(props: { title: string; message: string; detail?: string; onDismiss?: () => void; testId?: string }) {
  return (
    <div className="error-card" role="alert" data-testid={props.testId ?? 'error-card'}>
      <div className="error-icon" aria-hidden="true">!</div>
      <div className="error-body">
        <div className="error-title">{props.title}</div>
        <div className="error-message">{props.message}</div>
        {props.detail && <div className="error-detail mono">{props.detail}</div>}
      </div>
      {props.onDismiss && (
        <button type="button" className="btn btn-ghost btn-small" onClick={props.onDismiss}>
          Dismiss
        </button>
      )}
    </div>
  );
}

export function EmptyState(props: { title: string; children?: ReactNode }) {
  return (
    <div className="empty-state">
      <div className="empty-title">{props.title}</div>
      {props.children && <div className="empty-body">{props.children}</div>}
    </div>
  );
}

export function Spinner(props: { label?: string }) {
  return (
    <span className="spinner-wrap">
      <span className="spinner" aria-hidden="true" />
      {props.label && <span>{props.label}</span>}
    </span>
  );
}
