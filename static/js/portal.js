/* Every staff page: start NHS.UK frontend's components (header menu, error summary focus, radios...).
   A module, so browsers too old for the design system's scripts skip it and keep the plain pages. */
import { initAll } from "../vendor/nhsuk-frontend/nhsuk-frontend.min.js";

document.body.classList.add("js-enabled", "nhsuk-frontend-supported");
initAll();
