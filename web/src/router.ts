// Hash routes (/#/agent …): the server serves one index.html at "/" and needs no route table.
import { createRouter, createWebHashHistory } from 'vue-router'
import { session, homeFor, type PageName } from './session'
import { sessionReady } from './boot'

declare module 'vue-router' {
  interface RouteMeta {
    page?: PageName
    public?: boolean
  }
}

export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: '/login', name: 'login', component: () => import('./views/LoginView.vue'), meta: { public: true } },
    { path: '/agent', name: 'agent', component: () => import('./views/AgentView.vue'), meta: { page: 'agent' } },
    {
      path: '/wallboard',
      name: 'wallboard',
      component: () => import('./views/WallboardView.vue'),
      meta: { page: 'wallboard' },
    },
    { path: '/admin', name: 'admin', component: () => import('./views/AdminView.vue'), meta: { page: 'admin' } },
    { path: '/auditor', name: 'auditor', component: () => import('./views/AuditorView.vue'), meta: { page: 'auditor' } },
    { path: '/', name: 'root', component: () => import('./views/HomeView.vue') },
    { path: '/home', name: 'home', component: () => import('./views/HomeView.vue') },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})

router.beforeEach(async (to) => {
  await sessionReady
  if (to.path === '/' || to.path === '') {
    return session.user ? homeFor(session.user.role) : '/login'
  }
  if (to.meta.public) {
    if (session.user && to.name === 'login') return homeFor(session.user.role)
    return true
  }
  if (!session.user) {
    return { path: '/login', query: to.fullPath && to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  }
  // A page the role may not use still opens: App shows "无权访问" in its place.
  return true
})
