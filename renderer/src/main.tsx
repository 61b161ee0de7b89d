import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { connectToStudio } from './api/connect';
import { App } from './App';
import './styles/app.css';

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App api={connectToStudio()} />
  </StrictMode>,
);
